// Package slice is the kernel-slice ABI (docs/slice-abi.md) as both sides
// of the trace read it: the machine that loads a slice ELF (emu) and the
// replay that rebuilds state from the ELF and symbol table a trace carries
// (replay). It holds the one symbol table (Table: Resolve, At, Describe),
// and the instruction-start walker (Walk). It imports only the standard
// library, so that analyze, which must never reach emu, shares it.
package slice
