package emu

import (
	"fmt"
	"strings"
)

// service runs a native kernel service at its entry (c.RIP) with the System
// V arguments, sets RAX and returns to the caller as RET would. Everything
// the service does is recorded as events after the service event itself.
func (m *Machine) service(c *CPU, sv ServiceID) {
	args := [4]uint64{c.R[RDI], c.R[RSI], c.R[RDX], c.R[RCX]}
	if sv == SvcTextPoke && m.poker != nil && m.poker != c {
		// Torn writes: another CPU's text_poke is in progress. The kernel
		// serializes text_poke with text_mutex; this CPU waits at the call
		// (it runs the stub again on its next step).
		return
	}
	var ret uint64
	if sv == SvcModuleAlloc {
		ret = m.modNext
	}
	if sv == SvcTextPoke {
		ret = args[0]
	}
	if m.sink != nil {
		e := c.event(EvService)
		e.Service = sv
		e.Args = args
		e.Ret = ret
		m.emit(c, e)
	}
	c.stats.Services[sv]++
	switch sv {
	case SvcTextPoke:
		if m.cfg.Quirks.TornWrites && args[2] != 0 {
			// Byte by byte, one step each (pokeStep), each ending the
			// quantum; it returns when the last byte is written.
			m.textPokeStart(c, args[0], args[1], args[2])
			return
		}
		if !m.textPoke(c, args[0], args[1], args[2]) {
			return
		}
	case SvcSetMemoryRO, SvcSetMemoryRW, SvcSetMemoryX, SvcSetMemoryNX:
		ret = m.setMemory(c, sv, args[0], int64(int32(args[1])))
	case SvcModuleAlloc:
		ret = m.moduleAlloc(c, args[0])
	case SvcVfree, SvcModuleFree:
		if !m.moduleFree(c, sv, args[0]) {
			return
		}
	case SvcSendIPI:
		target, vec := int64(args[0]), Vector(args[1])
		if irqBit(vec) == 0 && vec != VecNMI {
			m.oops(c, vec, 0, 0, "pt_send_ipi: vector "+vec.Name()+" is not an IPI/IRQ vector the machine delivers")
			return
		}
		for _, t := range m.cpus {
			if target == int64(t.ID) || target == -2 || (target == -1 && t != c) {
				m.raise(t, vec, c)
			}
		}
	case SvcPanic, SvcBug:
		msg := "BUG() " + hex(args[0])
		if sv == SvcPanic {
			msg = "panic: " + m.cString(args[0], 200)
		}
		msg = m.panicPlace(c, msg)
		if m.sink != nil {
			e := c.event(EvFault)
			e.Service = sv
			e.Msg = msg
			m.emit(c, e)
		}
		stop := StopBug
		if sv == SvcPanic {
			stop = StopPanic
		}
		m.halt(stop, "cpu"+itoa(c.ID)+": "+msg)
		return
	case SvcMarker:
		if args[0] == MarkerOopsIP {
			c.oopsIP = args[1]
		}
		if m.sink != nil {
			e := c.event(EvMarker)
			e.Args[0], e.Args[1] = args[0], args[1]
			m.emit(c, e)
		}
	case SvcSwitch:
		if m.sink != nil {
			e := c.event(EvSwitch)
			e.Old, e.New = args[0], args[1]
			m.emit(c, e)
		}
		// Trap depth belongs to the task: the incoming one resumes at the
		// depth it was switched out at (0 for a task that never ran).
		if m.taskDepth == nil {
			m.taskDepth = map[uint32]uint8{}
		}
		m.taskDepth[uint32(args[0])] = c.depth
		c.depth = m.taskDepth[uint32(args[1])]
		c.task = uint32(args[1])
	case SvcExit:
		c.done = true
	}
	m.serviceReturn(c, sv, ret)
}

// serviceReturn returns from a native service to its caller with ret in RAX,
// as RET would.
func (m *Machine) serviceReturn(c *CPU, sv ServiceID, ret uint64) {
	rip, ok := c.pop()
	if !ok {
		c.exit = exitNone
		m.oops(c, VecDF, 0, c.R[RSP], "native "+sv.String()+": cannot pop the return address")
		return
	}
	c.R[RAX] = ret
	c.RIP = rip
}

func hex(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0x0"
	}
	var b [18]byte
	n := len(b)
	for v > 0 {
		n--
		b[n] = digits[v&15]
		v >>= 4
	}
	n -= 2
	b[n], b[n+1] = '0', 'x'
	return string(b[n:])
}

func (m *Machine) cString(addr uint64, max int) string {
	var out []byte
	var b [1]byte
	for i := 0; i < max; i++ {
		if !m.mem.peek(addr+uint64(i), b[:]) || b[0] == 0 {
			break
		}
		out = append(out, b[0])
	}
	return string(out)
}

func (m *Machine) callerOf(c *CPU) string {
	var b [8]byte
	if !m.mem.peek(c.R[RSP], b[:]) {
		return "?"
	}
	ret := loadLE(b[:], 8)
	// The call may be the last instruction of a noreturn function: name the
	// return address after the function the call is in (as Describe
	// prints: "symbol+0xoff").
	if s := m.img.SymbolAt(ret - 1); s != nil {
		return fmt.Sprintf("%s+%#x", s.Name, ret-s.Addr)
	}
	return m.img.Describe(ret)
}

// textPoke copies n bytes from src to kernel text at addr through a
// temporary writable alias of the target page(s), as the kernel's
// text_poke() does with its poking_mm: the text mapping itself stays r-x.
func (m *Machine) textPoke(c *CPU, addr, src, n uint64) bool {
	if n == 0 {
		return true
	}
	buf, ok := m.textPokeMap(c, addr, src, n)
	if !ok {
		return false
	}
	// Store through it, in the widest naturally sized pieces.
	off := addr & pageMask
	for i := uint64(0); i < n; {
		size := uint64(8)
		for size > 1 && (i+size > n || (off+i)%size != 0) {
			size >>= 1
		}
		var v uint64
		for k := uint64(0); k < size; k++ {
			v |= uint64(buf[i+k]) << (8 * k)
		}
		if !m.textPokeStore(c, addr, i, int(size), v) {
			return false
		}
		i += size
	}
	m.textPokeUnmap(c, addr, n)
	return true
}

// textPokeMap checks a text_poke, reads its source and maps the alias of
// the target pages.
func (m *Machine) textPokeMap(c *CPU, addr, src, n uint64) ([]byte, bool) {
	if n > 2*pageSize {
		m.oops(c, VecGP, 0, addr, "text_poke: length "+hex(n)+" too large")
		return nil, false
	}
	buf := make([]byte, n)
	if !m.mem.peek(src, buf) {
		m.oops(c, VecPF, 0, src, "text_poke: source "+hex(src)+" unmapped")
		return nil, false
	}
	first, last := addr>>pageShift, (addr+n-1)>>pageShift
	for vpn := first; vpn <= last; vpn++ {
		if m.mem.page(vpn) == nil {
			m.oops(c, VecPF, 0, vpn<<pageShift, "text_poke: target "+hex(vpn<<pageShift)+" unmapped")
			return nil, false
		}
	}
	for vpn := first; vpn <= last; vpn++ {
		av := aliasBase>>pageShift + (vpn - first)
		gen0 := m.mem.gen
		m.mem.mapFrame(av, m.mem.page(vpn).own(), PermRW, true)
		m.shootdown(av, gen0)
		m.aliasTo[vpn-first] = vpn << pageShift
		m.permEvent(c, av<<pageShift, 0, PermRW, SvcTextPoke, true, vpn<<pageShift)
	}
	return buf, true
}

// textPokeStore stores size bytes of v at addr+i through the alias.
func (m *Machine) textPokeStore(c *CPU, addr, i uint64, size int, v uint64) bool {
	if !c.write(aliasBase+addr&pageMask+i, size, v) {
		c.exit = exitNone
		m.oops(c, VecPF, 0, addr+i, "text_poke: alias store faulted")
		return false
	}
	return true
}

// textPokeUnmap tears the alias down.
func (m *Machine) textPokeUnmap(c *CPU, addr, n uint64) {
	first, last := addr>>pageShift, (addr+n-1)>>pageShift
	for vpn := first; vpn <= last; vpn++ {
		av := aliasBase>>pageShift + (vpn - first)
		gen0 := m.mem.gen
		m.mem.unmap(av)
		m.shootdown(av, gen0)
		m.permEvent(c, av<<pageShift, PermRW, 0, SvcTextPoke, true, vpn<<pageShift)
	}
}

// pokeState is a text_poke in progress under the TornWrites quirk.
type pokeState struct {
	addr uint64
	buf  []byte
	i    int // next byte to store
}

// textPokeStart begins a byte-granular text_poke: the alias is mapped now,
// each later step of c stores one byte (pokeStep).
func (m *Machine) textPokeStart(c *CPU, addr, src, n uint64) {
	buf, ok := m.textPokeMap(c, addr, src, n)
	if !ok {
		return
	}
	c.poke = &pokeState{addr: addr, buf: buf}
	m.poker = c
	c.updateAttention()
}

// pokeStep stores the next byte of c's text_poke through the alias (SDM
// Vol. 3 §8.1.1: only the single-byte store is guaranteed atomic, so other
// CPUs may fetch between any two), and after the last one tears the alias
// down and returns to the caller. text_poke runs with interrupts off
// (__text_poke's local_irq_save), so nothing is delivered meanwhile.
func (m *Machine) pokeStep(c *CPU) {
	p := c.poke
	if !m.textPokeStore(c, p.addr, uint64(p.i), 1, uint64(p.buf[p.i])) {
		c.poke, m.poker = nil, nil
		return
	}
	p.i++
	if p.i < len(p.buf) {
		return
	}
	m.textPokeUnmap(c, p.addr, uint64(len(p.buf)))
	c.poke, m.poker = nil, nil
	c.updateAttention()
	m.serviceReturn(c, SvcTextPoke, p.addr)
}

// aliasTarget maps an address in the text-poke alias window back to the
// kernel text address it stands for.
func (m *Machine) aliasTarget(a uint64) uint64 {
	i := (a - aliasBase) >> pageShift
	if i < uint64(len(m.aliasTo)) {
		return m.aliasTo[i] + a&pageMask
	}
	return a
}

func (m *Machine) permEvent(c *CPU, addr uint64, old, new Perm, sv ServiceID, alias bool, aliasOf uint64) {
	if m.sink == nil {
		return
	}
	e := c.event(EvPerm)
	e.Addr = addr
	e.Size = 1
	e.PermOld, e.PermNew = old, new
	e.Service = sv
	if alias {
		e.Alias = true
		e.AliasAddr = addr
		e.Addr = aliasOf
	}
	m.emit(c, e)
}

// setMemory implements set_memory_{ro,rw,x,nx}(addr, numpages). It returns 0
// or -EINVAL (as the kernel's) for an unaligned or unmapped range.
func (m *Machine) setMemory(c *CPU, sv ServiceID, addr uint64, n int64) uint64 {
	const einval = ^uint64(22 - 1) // -22
	if addr&pageMask != 0 || n < 0 || n > 1<<20 {
		return einval
	}
	for i := int64(0); i < n; i++ {
		if m.mem.page(addr>>pageShift+uint64(i)) == nil {
			return einval
		}
	}
	for i := int64(0); i < n; i++ {
		pg := m.mem.page(addr>>pageShift + uint64(i))
		np := pg.perm
		switch sv {
		case SvcSetMemoryRO:
			np &^= PermW
		case SvcSetMemoryRW:
			np |= PermW
		case SvcSetMemoryX:
			np |= PermX
		case SvcSetMemoryNX:
			np &^= PermX
		}
		old := m.mem.setPerm(pg, np)
		if (old^np)&PermX != 0 {
			m.xgen++ // executable mappings changed: decode caches re-resolve
		}
		m.permEvent(c, pg.vpn<<pageShift, old, np, sv, false, 0)
	}
	return 0
}

// moduleAlloc maps fresh rw- pages (module_alloc memory is not executable
// until set_memory_x) with a guard page after them.
func (m *Machine) moduleAlloc(c *CPU, size uint64) uint64 {
	if size == 0 || size > 1<<24 {
		return 0
	}
	n := (size + pageMask) >> pageShift
	addr := m.modNext
	m.mem.mapNew(addr, int(n), PermRW)
	for i := uint64(0); i < n; i++ {
		m.permEvent(c, addr+i<<pageShift, 0, PermRW, SvcModuleAlloc, false, 0)
	}
	m.modNext += (n + 1) << pageShift
	if m.modAllocs == nil {
		m.modAllocs = map[uint64]uint64{}
	}
	m.modAllocs[addr] = n
	return addr
}

// moduleFree implements vfree(addr) and module_memfree(addr): the pages of
// the module_alloc allocation that starts at addr are unmapped, so that a
// later access by any CPU faults (#PF, not present) as it would once the
// kernel's vfree has torn the mapping down and flushed the TLBs. The
// address range is never handed out again (module_alloc only moves up),
// so a stale pointer cannot silently reach a new allocation. A NULL
// address is a no-op (as the kernel's). Any other address that is not the
// start of a live allocation (never allocated, already freed, or inside
// one) is an oops: the kernel only WARNs ("Trying to vfree() nonexistent
// vm area"), but the slice's memory is then not what its author believes.
func (m *Machine) moduleFree(c *CPU, sv ServiceID, addr uint64) bool {
	if addr == 0 {
		return true
	}
	n, ok := m.modAllocs[addr]
	if !ok {
		m.oops(c, VecGP, 0, addr, sv.String()+": "+hex(addr)+" is not a live module_alloc allocation")
		return false
	}
	delete(m.modAllocs, addr)
	for i := uint64(0); i < n; i++ {
		vpn := addr>>pageShift + i
		pg := m.mem.page(vpn)
		if pg == nil {
			continue
		}
		old := pg.perm
		if old&PermX != 0 {
			m.xgen++ // executable mappings changed: decode caches re-resolve
		}
		gen0 := m.mem.gen
		m.mem.unmap(vpn)
		m.shootdown(vpn, gen0)
		m.permEvent(c, vpn<<pageShift, old, 0, sv, false, 0)
	}
	return true
}

// MarkerOopsIP is the pt_marker id a slice's oops path uses to name the
// faulting instruction before it panics: pt_marker(MarkerOopsIP,
// regs->ip) (scenarios/base's die(); docs/slice-abi.md).
const MarkerOopsIP = 0xffff

// panicPlace completes a panic or BUG message (msg: "panic: unhandled
// int3") with where it happened. The panic service itself runs in the
// panic() stub, so its RIP names no useful place: when the CPU's oops path
// named the faulting ip (pt_marker(MarkerOopsIP, regs->ip)) that is the
// place, and when the CPU's last exception pushed that very ip the
// exception is named as one no handler claimed ("int3 at X claimed by no
// handler": an int3's pushed RIP is the byte after the 0xCC, SDM Vol. 3
// §6.5, so X is one byte back). Otherwise the caller of panic() is.
func (m *Machine) panicPlace(c *CPU, msg string) string {
	caller := m.callerOf(c)
	ip := c.oopsIP
	what, text, _ := strings.Cut(msg, ": ")
	switch {
	case ip == 0 || what != "panic":
		return msg + " in " + caller
	case c.lastFrameRIP == ip && c.lastVec == VecBP:
		return "panic: int3 at " + m.img.Describe(ip-1) + " claimed by no handler (" + text + ", from " + caller + ")"
	case c.lastFrameRIP == ip:
		return "panic: " + c.lastVec.Name() + " at " + m.img.Describe(ip) + ": " + text + " (from " + caller + ")"
	}
	return msg + " at " + m.img.Describe(ip) + " (from " + caller + ")"
}
