package main

import (
	"errors"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsNodes is how many Gale servers the gale-nats3 variant runs.
const natsNodes = 3

// startNATS runs a NATS server in the driver's process, on a free port of
// 127.0.0.1, for the gale-nats3 variant's servers to meet on. Its CPU time
// is the driver's, in none of the run's columns.
func startNATS() (*natsserver.Server, error) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("NATS server not ready")
	}
	return ns, nil
}
