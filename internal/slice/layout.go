package slice

// The address-space layout the machine gives a slice (docs/slice-abi.md,
// Memory layout).
const (
	// PageSize is the page granularity of mappings and permissions.
	PageSize = 1 << PageShift
	// PageShift is log2(PageSize).
	PageShift = 12

	// PercpuBase is CPU 0's per-CPU area; CPU n's is n strides above
	// (stride: the per-CPU section rounded up to pages, plus a guard
	// page). GS base points at it.
	PercpuBase uint64 = 0xffff888000000000
	// BootStackTop is where the boot stacks start: CPU n's BootStackLen
	// bytes lie at BootStackTop + n*BootStackGap, guard pages between.
	BootStackTop uint64 = 0xffffc90000000000
	BootStackGap uint64 = 0x10000
	BootStackLen uint64 = 0x4000
	// ModuleBase is the start of the module_alloc area.
	ModuleBase uint64 = 0xffffffffa0000000
	// AliasBase is the text-poke alias, mapped only during a text_poke.
	AliasBase uint64 = 0xffffe00000000000
	// AliasPages bounds the pages the alias maps.
	AliasPages = 4

	// MaxCPUs is the largest machine.
	MaxCPUs = 64
)

// The vector table and the interrupt stacks (docs/slice-abi.md, Traps and
// interrupts; SDM Vol. 3 §6.14.5).
const (
	// VectorSection is the vector table: 16-byte entries
	// {u8 vector; u8 type; u8 ist; u8 pad[5]; u64 handler}.
	VectorSection = ".pt.vectors"
	// VectorEntrySize is the size of one VectorSection entry.
	VectorEntrySize = 16
	// ISTSymbol is the per-CPU u64[8] array the IST stack pointers are
	// read from at delivery, indexed by IST number.
	ISTSymbol = "cpu_tss_ist"
	// MaxIST is the largest IST index (1..7; 0 is no IST).
	MaxIST = 7
)

// Range is an address range [Lo, Hi).
type Range struct {
	Name   string
	Lo, Hi uint64
}

// Reserved are the address ranges the machine maps itself: a slice section
// there would be mapped over.
var Reserved = []Range{
	{"the per-CPU areas", PercpuBase, PercpuBase + MaxCPUs*(MaxPercpuBytes+2*PageSize)},
	{"the boot stacks", BootStackTop, BootStackTop + MaxCPUs*BootStackGap},
	{"the text-poke alias", AliasBase, AliasBase + AliasPages*PageSize},
	{"the module_alloc area", ModuleBase, 0xffffffffff000000},
}

// Perm is a page's access permission set, with the bits the trace stores,
// printed as "rwx" with '-' for a missing right (gVisor
// hostarch.AccessType style).
type Perm uint8

const (
	PermR Perm = 1 << iota
	PermW
	PermX

	PermRW  = PermR | PermW
	PermRX  = PermR | PermX
	PermRWX = PermR | PermW | PermX
)

func (p Perm) String() string {
	b := []byte("---")
	if p&PermR != 0 {
		b[0] = 'r'
	}
	if p&PermW != 0 {
		b[1] = 'w'
	}
	if p&PermX != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// PercpuStride is the distance between two CPUs' per-CPU areas for a
// per-CPU section of size bytes: the section rounded up to whole pages,
// plus an unmapped guard page.
func PercpuStride(size uint64) uint64 {
	return (size+PageSize-1)&^(PageSize-1) + PageSize
}

// BootStack returns CPU cpu's boot stack, [lo, top): BootStackLen bytes,
// the CPU's RSP at boot being top.
func BootStack(cpu int) (lo, top uint64) {
	top = BootStackTop + uint64(cpu)*BootStackGap + BootStackLen
	return top - BootStackLen, top
}
