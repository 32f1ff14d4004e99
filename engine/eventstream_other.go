//go:build !linux

package engine

// setStreamTimeout has no portable form: a dead client is found by TCP's
// retransmission limit, or by its backlog reaching MaxOutbound.
func setStreamTimeout(*Conn) {}
