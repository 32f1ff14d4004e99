package codec

//go:generate go run golang.org/x/tools/cmd/stringer@v0.30.0 -type=Opcode -trimprefix=Op -output=opcode_string.go

// Opcode is a frame's opcode (RFC 6455 §5.2).
type Opcode byte

// Opcodes defined by RFC 6455 §5.2. The rest (0x3–0x7, 0xB–0xF) are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether o is a control opcode (its high bit is set).
func (o Opcode) IsControl() bool { return o&0x8 != 0 }

// IsData reports whether o is a data opcode, continuation included.
func (o Opcode) IsData() bool { return o&0x8 == 0 }

// IsReserved reports whether o is not defined by RFC 6455. A reserved
// opcode fails the connection with 1002 unless an extension defines it.
func (o Opcode) IsReserved() bool {
	switch o {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return false
	}
	return true
}
