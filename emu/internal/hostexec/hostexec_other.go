//go:build !(linux && amd64)

package hostexec

// Run returns ErrUnsupported: host execution needs linux/amd64.
func Run(code []byte, st *State) error { return ErrUnsupported }

// Scratch returns nil, 0: host execution needs linux/amd64.
func Scratch() (mem []byte, addr uint64) { return nil, 0 }

// CodeAddr returns 0: host execution needs linux/amd64.
func CodeAddr() uint64 { return 0 }
