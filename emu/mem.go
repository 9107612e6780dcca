package emu

import (
	"encoding/binary"
	"sort"
)

const (
	pageShift = 12
	pageSize  = 1 << pageShift
	pageMask  = pageSize - 1
)

// frame is one 4 KiB page of "physical" memory. Several virtual pages may map
// it (the text-poke alias maps kernel text a second time, writable).
type frame struct {
	data [pageSize]byte
	// codeGen counts stores to this frame, whatever the permissions of
	// its mappings: bytes changed while no mapping was executable
	// (set_memory_nx, a store, set_memory_x) are changed code all the same.
	// Decode caches compare it to find decodes that may be stale.
	codeGen uint64
	// decoded: some CPU has a decode page over this frame (set when the
	// page is made, never cleared); from then on stores are logged in
	// wlog, store number g at wlog[g%wlogLen], so that a decode page
	// behind by at most wlogLen stores rechecks only the instructions
	// those stores overlap (decodePage.reset).
	decoded bool
	wlog    [wlogLen]wrec
}

// wlogLen is how many of a frame's latest stores are logged.
const wlogLen = 16

// wrec is one logged store: its page offset and size in bytes.
type wrec struct {
	off uint16
	n   uint16
}

// zeroFrame backs every page nothing has stored to yet (NOBITS sections,
// per-CPU areas past their template, boot stacks, module_alloc memory):
// reads see zeros without a frame of their own, and the first store gives
// the page one (own). It is shared by all machines and never written, so
// setting up a machine costs nothing per untouched page (RATIONALE.md,
// per-run setup). A page is given its own frame before it can be
// executable or aliased (mapFrame, setPerm, text_poke's alias), so decode
// caches and aliases only ever see frames that stay with their page.
var zeroFrame frame

// page is one virtual 4 KiB mapping.
type page struct {
	f     *frame
	vpn   uint64
	perm  Perm
	alias bool // a text-poke alias: stores here are "through the alias"
	// cow: f is shared and never written (zeroFrame, or a frame of the
	// Snapshot this machine started from): the first store gives the
	// page a copy of its own (own).
	cow bool
}

// Memory is the machine's sparse virtual address space. It is shared by all
// CPUs; each CPU keeps a small direct-mapped TLB in front of it.
type Memory struct {
	pages map[uint64]*page // vpn -> mapping
	gen   uint64           // bumped on map/unmap: CPU TLBs flush when it changes
}

// newMemory returns an empty address space with room for about hint pages
// (growing the map during setup rehashes it several times).
func newMemory(hint int) *Memory { return &Memory{pages: make(map[uint64]*page, hint)} }

// mapFrame maps frame f at virtual page vpn with perm.
func (m *Memory) mapFrame(vpn uint64, f *frame, perm Perm, alias bool) *page {
	if old := m.pages[vpn]; old != nil {
		m.unmap(vpn)
	}
	p := &page{f: f, vpn: vpn, perm: perm, alias: alias}
	if perm&PermX != 0 {
		p.own()
	}
	m.pages[vpn] = p
	m.gen++
	return p
}

// mapNew maps n fresh zeroed pages starting at the page-aligned addr (all
// backed by zeroFrame until stored to).
func (m *Memory) mapNew(addr uint64, n int, perm Perm) {
	ps := make([]page, n) // one allocation for the n mappings
	for i := range ps {
		vpn := addr>>pageShift + uint64(i)
		m.unmap(vpn)
		ps[i] = page{f: &zeroFrame, vpn: vpn, perm: perm, cow: true}
		if perm&PermX != 0 {
			ps[i].own()
		}
		m.pages[vpn] = &ps[i]
	}
	m.gen++
}

// own gives p a frame of its own if it still reads a shared one (cow), and
// returns it. The new frame is a copy of the shared one, codeGen included:
// all zeros with codeGen 0 for zeroFrame (which no store reaches), the
// snapshot's bytes and generation for a snapshot's frame, so the run sees
// exactly what a machine set up from scratch would.
func (p *page) own() *frame {
	if p.cow {
		nf := new(frame)
		if p.f != &zeroFrame {
			*nf = *p.f
		}
		p.f, p.cow = nf, false
	}
	return p.f
}

func (m *Memory) unmap(vpn uint64) {
	p := m.pages[vpn]
	if p == nil {
		return
	}
	delete(m.pages, vpn)
	m.gen++
}

// setPerm changes a mapping's permission and reports the old one.
func (m *Memory) setPerm(p *page, perm Perm) Perm {
	old := p.perm
	p.perm = perm
	if perm&PermX != 0 {
		p.own()
	}
	return old
}

func (m *Memory) page(vpn uint64) *page { return m.pages[vpn] }

// sortedVPNs returns the mapped virtual page numbers in order (for
// deterministic iteration and for dumps).
func (m *Memory) sortedVPNs() []uint64 {
	v := make([]uint64, 0, len(m.pages))
	for k := range m.pages {
		v = append(v, k)
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v
}

// peek reads bytes without permission checks or events (for the loader,
// native services and dumps). It reports whether every byte was mapped.
func (m *Memory) peek(addr uint64, buf []byte) bool {
	for i := range buf {
		a := addr + uint64(i)
		p := m.pages[a>>pageShift]
		if p == nil {
			return false
		}
		buf[i] = p.f.data[a&pageMask]
	}
	return true
}

// poke writes bytes without permission checks or events (loader only). It
// reports whether every byte was mapped; on false the bytes up to the first
// unmapped page are written.
func (m *Memory) poke(addr uint64, buf []byte) bool {
	for len(buf) > 0 {
		p := m.pages[addr>>pageShift]
		if p == nil {
			return false
		}
		n := copy(p.own().data[addr&pageMask:], buf)
		buf = buf[n:]
		addr += uint64(n)
	}
	return true
}

// tlbEntries is the size of each CPU's direct-mapped translation cache.
const tlbEntries = 64

type tlbEntry struct {
	tag uint64 // vpn+1 (never 0: vpns are below 2^52); 0: empty
	p   *page
}

// lookup translates a virtual page number through the CPU's TLB.
func (c *CPU) lookup(vpn uint64) *page {
	if p := c.tlbHit(vpn); p != nil {
		return p
	}
	return c.lookupSlow(vpn)
}

// tlbHit is the TLB's answer for vpn, nil on a miss (an entry never holds a
// nil page). It inlines into read and write, where lookup as a whole is
// over the inliner's budget.
func (c *CPU) tlbHit(vpn uint64) *page {
	if e := &c.tlb[vpn%tlbEntries]; e.tag == vpn+1 {
		return e.p
	}
	return nil
}

// shootdown drops vpn's translation from every CPU's TLB: the machine's
// part of a TLB shootdown after an unmap or remap (the kernel's
// flush_tlb_kernel_range() in vfree/module_memfree, text_poke's flush of
// its temporary mapping). Without it a CPU that had used the page would
// keep reaching the old mapping through its TLB, where the kernel's CPUs
// fault (SDM Vol. 3 §4.10.4: software must invalidate TLB entries of
// translations it changes). A TLB hit does not check Memory.gen, so
// every runtime unmap and remap must come through here.
//
// gen0 is Memory.gen before the change, which must have been vpn's alone:
// a CPU whose TLB was current then is current now without vpn's entry, so
// it keeps its other entries (otherwise its next miss would flush them
// all, lookupSlow). text_poke maps and unmaps its alias on every call:
// with the whole-TLB flush every CPU looked up its pages again after each
// (7-8 % of text-poke-bp's CPU time in lookupSlow's map lookups).
func (m *Machine) shootdown(vpn, gen0 uint64) {
	for _, c := range m.cpus {
		if e := &c.tlb[vpn%tlbEntries]; e.tag == vpn+1 {
			*e = tlbEntry{}
		}
		if e := &c.tlbVictim[vpn%tlbEntries]; e.tag == vpn+1 {
			*e = tlbEntry{}
		}
		if c.tlbGen == gen0 {
			c.tlbGen = m.mem.gen
		}
	}
}

// lookupSlow is kept out of line so that lookup, its hit, inlines into
// every access.
//
// An entry evicted by a fill goes to the slot's victim (tlbVictim), where
// a miss looks before the page map and swaps it back: the direct map's
// per-CPU and stack pages share their slots with the kernel text pages at
// the same offset (text-poke-bp: 12k page-map lookups a run, mostly those
// pairs, where a victim swap is a few loads), and a slot computed from
// more bits than the low ones would cost every access, hits included.
//
//go:noinline
func (c *CPU) lookupSlow(vpn uint64) *page {
	mem := c.m.mem
	if c.tlbGen != mem.gen {
		c.tlb = [tlbEntries]tlbEntry{}
		c.tlbVictim = [tlbEntries]tlbEntry{}
		c.tlbGen = mem.gen
	}
	i := vpn & (tlbEntries - 1)
	if v := c.tlbVictim[i]; v.tag == vpn+1 {
		c.tlbVictim[i], c.tlb[i] = c.tlb[i], v
		return v.p
	}
	p := mem.pages[vpn]
	if p != nil {
		c.tlbVictim[i] = c.tlb[i]
		c.tlb[i] = tlbEntry{tag: vpn + 1, p: p}
	}
	return p
}

// pageFault raises the exception for a failed access to addr. A
// non-canonical address raises #GP(0) with no CR2 (SDM Vol. 3 §6.15
// Interrupt 13: "a memory address that is in non-canonical form"; the
// paging structures are never consulted, §4.1.1); stack references turn it
// into #SS(0) (stackFault). Otherwise it is #PF (SDM Vol. 3 §4.7, §6.15
// Interrupt 14): CR2 := addr, and the error code has bit 0 P = the page was
// present (a protection violation), bit 1 W/R = a write, bit 4 I/D = an
// instruction fetch (reported because NX is enabled: IA32_EFER.NXE = 1,
// CPUID advertises NX); U/S (bit 2) is 0 at CPL 0, and RSVD (bit 3), PK,
// SS and SGX are 0 because the machine has no reserved-bit, protection-key,
// shadow-stack or enclave checks.
func (c *CPU) pageFault(addr uint64, acc Access, present bool) {
	c.exit, c.brk = exitFault, true // see CPU.brk
	if !canonical(addr) {
		c.fault = faultInfo{vector: VecGP, hasErr: true, access: acc, noncanon: true}
		return
	}
	var ec uint64
	if present {
		ec |= 1
	}
	if acc == AccessWrite {
		ec |= 2
	}
	if acc == AccessExec {
		ec |= 1 << 4
	}
	c.fault = faultInfo{vector: VecPF, errCode: ec, hasErr: true, addr: addr, access: acc}
}

// stackFault is called after a failed access through the stack segment
// (PUSH, POP, CALL, RET, IRETQ, a memory operand based on RSP or RBP): a
// non-canonical address there is #SS(0), not #GP(0) (SDM Vol. 3 §6.15
// Interrupt 12, and the "64-Bit Mode Exceptions" of PUSH, POP, CALL, RET,
// IRET in Vol. 2: "#SS(0) If a memory address referencing the SS segment is
// in a non-canonical form").
func (c *CPU) stackFault() {
	if c.fault.noncanon {
		c.fault.vector = VecSS
	}
}

// read loads size (1, 2, 4 or 8) bytes little-endian from addr: a data
// read of the instruction being executed (recorded as a load event).
// Instruction fetches and the machine's own reads of system structures do
// not come here. On a fault it raises #PF and returns ok=false; the caller
// must then leave architectural state unchanged and return.
func (c *CPU) read(addr uint64, size int) (uint64, bool) {
	off := addr & pageMask
	if off+uint64(size) > pageSize {
		return c.readSplit(addr, size)
	}
	vpn := addr >> pageShift
	p := c.tlbHit(vpn)
	if p == nil {
		p = c.lookupSlow(vpn)
	}
	if p == nil || p.perm&PermR == 0 {
		c.pageFault(addr, AccessRead, p != nil)
		return 0, false
	}
	if m := c.m; m.watchReads || m.loads {
		return c.readEvents(p, addr, size), true
	}
	return loadLE(p.f.data[off:], size), true
}

// readEvents is a permitted read whose machine is told about reads.
func (c *CPU) readEvents(p *page, addr uint64, size int) uint64 {
	c.brk = true // see CPU.brk
	if c.m.watchReads && addr-c.m.percpuLo < c.m.percpuSpan {
		c.m.percpuRead(c, addr, size)
	}
	v := loadLE(p.f.data[addr&pageMask:], size)
	if c.m.loads {
		// Every data read is a load event (a page-crossing one byte by
		// byte, through readSplit, as stores are).
		c.m.emitLoad(c, addr, size, v)
	}
	return v
}

func (c *CPU) readSplit(addr uint64, size int) (uint64, bool) {
	if end := addr + uint64(size) - 1; !canonical(end) {
		// An access whose last byte is non-canonical is #GP(0) (#SS(0))
		// before any byte is translated (SDM Vol. 3 §6.15 Interrupt 13);
		// only a page-crossing access can straddle the hole.
		c.pageFault(end, AccessRead, false)
		return 0, false
	}
	var v uint64
	for i := 0; i < size; i++ {
		b, ok := c.read(addr+uint64(i), 1)
		if !ok {
			return 0, false
		}
		v |= b << (8 * i)
	}
	return v, true
}

// write stores the low size bytes of v at addr. On a fault it raises #PF and
// returns false having changed nothing.
func (c *CPU) write(addr uint64, size int, v uint64) bool {
	off := addr & pageMask
	if off+uint64(size) > pageSize {
		return c.writeSplit(addr, size, v)
	}
	vpn := addr >> pageShift
	p := c.tlbHit(vpn)
	if p == nil {
		p = c.lookupSlow(vpn)
	}
	if p == nil || p.perm&PermW == 0 {
		c.pageFault(addr, AccessWrite, p != nil)
		return false
	}
	if f := p.f; c.m.sink == nil && !p.cow {
		// commitWrite without a sink, for a page with a frame of its own
		// (not a shared one: zeroFrame, or a snapshot's).
		storeLE(f.data[off:], size, v)
		f.stored(off, size)
		if f.decoded {
			c.brk = true // code may have changed: see CPU.brk
		}
		return true
	}
	c.commitWrite(p, addr, size, v)
	return true
}

// commitWrite performs a permitted store and tells the machine about it.
func (c *CPU) commitWrite(p *page, addr uint64, size int, v uint64) {
	c.brk = true // see CPU.brk
	off := addr & pageMask
	d := p.own().data[off:]
	if c.m.sink != nil {
		c.m.emitWrite(c, p, addr, size, loadLE(d, size), v)
	}
	storeLE(d, size, v)
	p.f.stored(off, size)
}

// stored notes a store of size bytes at off. Any store may change code
// (decode pages compare the generation: in the coherent model every fetch
// does, in the stale model only serialization does).
func (f *frame) stored(off uint64, size int) {
	f.codeGen++
	if f.decoded {
		f.wlog[f.codeGen%wlogLen] = wrec{uint16(off), uint16(size)}
	}
}

func storeLE(d []byte, size int, v uint64) {
	switch size {
	case 1:
		d[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(d, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(d, uint32(v))
	default:
		binary.LittleEndian.PutUint64(d, v)
	}
}

func (c *CPU) writeSplit(addr uint64, size int, v uint64) bool {
	if end := addr + uint64(size) - 1; !canonical(end) {
		c.pageFault(end, AccessWrite, false) // see readSplit
		return false
	}
	// Check every byte first so that a fault changes nothing.
	for i := 0; i < size; i++ {
		a := addr + uint64(i)
		p := c.lookup(a >> pageShift)
		if p == nil || p.perm&PermW == 0 {
			c.pageFault(a, AccessWrite, p != nil)
			return false
		}
	}
	for i := 0; i < size; i++ {
		a := addr + uint64(i)
		c.commitWrite(c.lookup(a>>pageShift), a, 1, v>>(8*i))
	}
	return true
}

// push decrements RSP by 8 and stores v there. On a fault RSP is unchanged.
//
// Its common case is write's, spelled out: within one page, a TLB hit on
// a writable page with a frame of its own that no CPU has decoded from,
// and no sink (so no event and no c.brk to raise).
func (c *CPU) push(v uint64) bool {
	sp := c.R[RSP] - 8
	if p := c.tlbHit(sp >> pageShift); p != nil && sp&pageMask <= pageSize-8 && p.perm&PermW != 0 && !p.cow && !p.f.decoded && c.m.sink == nil {
		f := p.f
		binary.LittleEndian.PutUint64(f.data[sp&pageMask:], v)
		f.codeGen++ // f.stored: no write log for a frame not decoded
		c.R[RSP] = sp
		return true
	}
	return c.pushSlow(sp, v)
}

func (c *CPU) pushSlow(sp, v uint64) bool {
	if !c.write(sp, 8, v) {
		c.stackFault()
		return false
	}
	c.R[RSP] = sp
	return true
}

// pop loads 8 bytes at RSP and increments RSP. On a fault RSP is unchanged.
// Its common case is read's, spelled out: within one page, a TLB hit on a
// readable page, and the machine told about no read.
func (c *CPU) pop() (uint64, bool) {
	sp := c.R[RSP]
	if p := c.tlbHit(sp >> pageShift); p != nil && sp&pageMask <= pageSize-8 && p.perm&PermR != 0 && !c.m.watchReads && !c.m.loads {
		c.R[RSP] = sp + 8
		return binary.LittleEndian.Uint64(p.f.data[sp&pageMask:]), true
	}
	return c.popSlow()
}

func (c *CPU) popSlow() (uint64, bool) {
	v, ok := c.read(c.R[RSP], 8)
	if !ok {
		c.stackFault()
		return 0, false
	}
	c.R[RSP] += 8
	return v, true
}

func loadLE(d []byte, size int) uint64 {
	switch size {
	case 1:
		return uint64(d[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(d))
	case 4:
		return uint64(binary.LittleEndian.Uint32(d))
	}
	return binary.LittleEndian.Uint64(d)
}
