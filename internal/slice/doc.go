// Package slice is the kernel-slice ABI (docs/slice-abi.md) coded once, for
// both sides of a trace: the machine that loads a slice ELF (emu) and the
// replay that rebuilds state from the ELF and symbols a trace carries
// (replay, and through it analyze). It imports only the standard library,
// so that analyze, which must never reach emu, shares it.
//
// In order:
//
//   - Open checks a slice ELF against the limits (MaxImageBytes,
//     MaxMappedBytes, MaxPercpuBytes, MaxSections; no section overlapping
//     another or a Reserved range, none sharing a page with different
//     permissions) and gives its Sections (address, size, Perm, bytes), the
//     per-CPU template and the vector table; ELF.Symbols reads its symbols.
//   - The layout: PercpuBase and PercpuStride, BootStack, ModuleBase,
//     AliasBase, MaxCPUs; the vector table (VectorSection) and IST
//     (ISTSymbol, MaxIST) constants.
//   - Table is the one symbol table: Lookup, Resolve ("symbol+off" to an
//     address), At (the symbol containing an address), Describe (an address
//     as "symbol+0xoff", which Resolve reads back), PercpuAt, IsEntry.
//   - Walk and Starts are the instruction-start walker (linear sweep over a
//     function's bytes with a caller-supplied instruction length, so no
//     decoder is imported here).
package slice
