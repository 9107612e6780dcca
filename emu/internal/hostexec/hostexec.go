package hostexec

import "errors"

// State is the register file compared by differential tests, hardware order.
//
// hostexec_amd64.s addresses R[i] at offset 8*i, so R stays the first field.
type State struct {
	R      [16]uint64 // RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15
	RFLAGS uint64
}

// ErrUnsupported is returned by Run on platforms other than linux/amd64.
var ErrUnsupported = errors.New("hostexec: not supported on this platform")

// RFLAGS bits (SDM Vol. 1 §3.4.3, Figure 3-8).
//
//	 21 20  19  18 17 16 15 14 13 12 11 10  9  8  7  6  5  4  3  2  1  0
//	+--+---+---+--+--+--+--+--+-----+--+--+--+--+--+--+--+--+--+--+--+--+
//	|ID|VIP|VIF|AC|VM|RF| 0|NT|IOPL |OF|DF|IF|TF|SF|ZF| 0|AF| 0|PF| 1|CF|
//	+--+---+---+--+--+--+--+--+-----+--+--+--+--+--+--+--+--+--+--+--+--+
const (
	rflagsCF = 1 << 0
	rflagsPF = 1 << 2
	rflagsAF = 1 << 4
	rflagsZF = 1 << 6
	rflagsSF = 1 << 7
	rflagsTF = 1 << 8
	rflagsDF = 1 << 10
	rflagsOF = 1 << 11
	rflagsAC = 1 << 18

	// rflagsLoaded are the bits Run takes from State.RFLAGS.
	rflagsLoaded = rflagsCF | rflagsPF | rflagsAF | rflagsZF | rflagsSF | rflagsOF | rflagsDF
	// rflagsCleared are the host bits the trampoline clears before merging
	// rflagsLoaded in: a set TF would single-step into SIGTRAP and a set AC
	// would turn misaligned accesses into SIGBUS.
	rflagsCleared = rflagsLoaded | rflagsTF | rflagsAC
)
