package emu

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

func tz64(x uint64) int { return bits.TrailingZeros64(x) }

// dcEntries is the size of each CPU's direct-mapped decode-page cache.
const dcEntries = 64

// decodePage holds one CPU's decoded instructions for one executable page,
// indexed by the page offset of their first byte.
type decodePage struct {
	vpn  uint64
	pg   *page
	f    *frame // pg.f (an executable page's frame stays with it: mem.go)
	gen  uint64 // f.codeGen when insts were last known to match memory
	tail *frame // next page's frame, while some inst runs into it
	// tailGen is tail.codeGen when the insts running into it were last
	// known to match it (tailStale forces a check).
	tailGen uint64
	xgen    uint64 // Machine.xgen when pg was resolved
	insts   [pageSize]*inst
	live    [pageSize / 64]uint64 // bit o: insts[o] is non-nil
	idx     int                   // in the CPU's dlist
}

// maxInstLen is the longest x86 instruction (SDM Vol. 2 §2.3.11).
const maxInstLen = 15

func (dp *decodePage) add(off uint64, in *inst) {
	dp.insts[off] = in
	dp.live[off/64] |= 1 << (off % 64)
}

func (dp *decodePage) drop(off int) {
	dp.insts[off] = nil
	dp.live[off/64] &^= 1 << (off % 64)
}

// tailStale is a tailGen no frame reaches: the next check validates.
const tailStale = ^uint64(0)

// changed reports whether the bytes of some decode may have changed: its
// page's or, for an instruction crossing the page boundary, the next
// page's (SDM Vol. 3 §8.1.3: the bytes of the whole instruction count).
func (dp *decodePage) changed() bool {
	return dp.gen != dp.f.codeGen || dp.tail != nil && dp.tailGen != dp.tail.codeGen
}

// reset drops the decodes whose bytes no longer match memory as c sees it
// (an instruction is still valid exactly when its bytes are unchanged,
// including those on the next page, which must still be executable) and
// marks the page current.
//
// Every decode kept matched memory when dp.gen was the frame's codeGen,
// and a later decode matched it when made, so only the decodes that a
// store since dp.gen overlaps can differ: when the frame's write log
// still holds every such store, only those decodes are compared (and the
// ones running into the next page, whose bytes and permission the log does
// not cover); otherwise all are. Both drop exactly the decodes whose bytes
// differ.
func (dp *decodePage) reset(c *CPU) {
	f := dp.f
	var next *page
	if dp.tail != nil {
		if p := c.lookup(dp.vpn + 1); p != nil && p.perm&PermX != 0 {
			next = p
		}
	}
	crossing := false
	if d := f.codeGen - dp.gen; d <= wlogLen && f.decoded && !fullReset {
		for g := dp.gen + 1; g != f.codeGen+1; g++ {
			w := f.wlog[g%wlogLen]
			lo := max(int(w.off)-(maxInstLen-1), 0)
			for o := lo; o < int(w.off)+int(w.n) && o < pageSize; o++ {
				if in := dp.insts[o]; in != nil && o+int(in.len) > int(w.off) && o+int(in.len) <= pageSize {
					if !dp.same(o, next) {
						dp.drop(o)
					}
				}
			}
		}
		for o := pageSize - (maxInstLen - 1); o < pageSize; o++ {
			if in := dp.insts[o]; in != nil && o+int(in.len) > pageSize {
				if dp.same(o, next) {
					crossing = true
				} else {
					dp.drop(o)
				}
			}
		}
	} else {
		for w := range dp.live {
			for bits := dp.live[w]; bits != 0; bits &= bits - 1 {
				o := w*64 + tz64(bits)
				if !dp.same(o, next) {
					dp.drop(o)
				} else if o+int(dp.insts[o].len) > pageSize {
					crossing = true
				}
			}
		}
	}
	dp.gen = f.codeGen
	dp.tail = nil
	if crossing {
		dp.tail, dp.tailGen = next.f, next.f.codeGen
	}
}

// fullReset makes reset compare every decode: the reference the tests hold
// the logged recheck to.
var fullReset = false

// same reports whether the decode at off still matches memory: its page's
// bytes and, for one running into the next page, next's (nil: not
// executable, so it cannot match).
func (dp *decodePage) same(off int, next *page) bool {
	in := dp.insts[off]
	end := off + int(in.len)
	data := &dp.f.data
	if end <= pageSize {
		return string(data[off:end]) == string(in.raw[:in.len])
	}
	if next == nil {
		return false
	}
	head := pageSize - off
	return string(data[off:]) == string(in.raw[:head]) &&
		string(next.f.data[:end-pageSize]) == string(in.raw[head:in.len])
}

// addTail notes that a decode on dp runs into the next page, whose frame is
// f. The oldest generation is kept, so a decode made before a later change
// of f is still checked.
func (dp *decodePage) addTail(f *frame) {
	// A store to f may now change a decode: it must tell the step loop
	// (CPU.brk), and its write log serves reset as for a decoded page.
	f.decoded = true
	switch {
	case dp.tail == nil:
		dp.tail, dp.tailGen = f, f.codeGen
	case dp.tail != f:
		dp.tail, dp.tailGen = f, tailStale
	}
}

// fetch returns the decoded instruction at c.RIP. ok=false means the fetch
// faulted (c.exit is set) or the emulator cannot go on (err != nil).
// currentPage is fetch's hit: the CPU's decode cache for RIP's page when
// it is current (same mapping generation, and bytes unchanged or the stale
// fetch model), nil otherwise (fetch then does the rest). Small enough to
// inline into the step loop, which takes the decode at RIP from it (the
// runs of common steps, fastRuns, check it once per page).
func (c *CPU) currentPage() *decodePage {
	vpn := c.RIP >> pageShift
	dp := c.dc[vpn&(dcEntries-1)]
	if dp == nil || dp.vpn != vpn || dp.xgen != c.m.xgen || dp.changed() && !c.m.cfg.Quirks.StaleFetch {
		return nil
	}
	return dp
}

func (c *CPU) fetch() (in *inst, ok bool, err error) {
	rip := c.RIP
	vpn := rip >> pageShift
	dp := c.dc[vpn&(dcEntries-1)]
	if dp == nil || dp.vpn != vpn || dp.xgen != c.m.xgen {
		dp = c.decodePageSlow(vpn)
		if dp == nil {
			c.pageFault(rip, AccessExec, c.lookup(vpn) != nil)
			return nil, false, nil
		}
	}
	if dp.changed() && !c.m.cfg.Quirks.StaleFetch {
		dp.reset(c) // coherent fetch: bytes changed, decode again
	}
	in = dp.insts[rip&pageMask]
	if in != nil {
		return in, true, nil
	}
	in, ok, err = c.decodeAt(rip)
	if ok {
		off := rip & pageMask
		dp.add(off, in)
		if off+uint64(in.len) > pageSize {
			dp.addTail(c.lookup(vpn + 1).f)
		}
	}
	return in, ok, err
}

// decodePageSlow finds or creates the decode page for an executable vpn, or
// returns nil when the page is unmapped or not executable.
func (c *CPU) decodePageSlow(vpn uint64) *decodePage {
	p := c.lookup(vpn)
	if p == nil || p.perm&PermX == 0 {
		return nil
	}
	dp := c.dmap[vpn]
	if dp == nil || dp.pg != p {
		old := dp
		dp = &decodePage{vpn: vpn, pg: p, f: p.f, gen: p.f.codeGen}
		p.f.decoded = true
		c.dmap[vpn] = dp
		if old != nil {
			dp.idx = old.idx
			c.dlist[dp.idx] = dp
		} else {
			dp.idx = len(c.dlist)
			c.dlist = append(c.dlist, dp)
		}
	} else if dp.tail != nil {
		// An executable mapping changed: the next page may be gone or
		// no longer executable.
		dp.tailGen = tailStale
	}
	dp.xgen = c.m.xgen
	c.dc[vpn&(dcEntries-1)] = dp
	return dp
}

// decodeAt reads up to 15 bytes at rip (stopping at the first byte that is
// not executable) and decodes them, or takes another CPU's decode of the
// same bytes at the same address (an inst depends on nothing else, and is
// immutable: the machine's CPUs share it rather than each decoding it).
func (c *CPU) decodeAt(rip uint64) (*inst, bool, error) {
	var buf [15]byte
	n := 0
	for ; n < len(buf); n++ {
		a := rip + uint64(n)
		p := c.lookup(a >> pageShift)
		if p == nil || p.perm&PermX == 0 {
			break
		}
		buf[n] = p.f.data[a&pageMask]
	}
	if s, ok := c.m.decodes[rip]; ok && int(s.n) == n && s.code == buf {
		return s.in, true, nil
	}
	// The machine's annotations of the address (natives, watches) are
	// part of the memo's key: runs of other machines share the memo.
	key := decodeKey{rip: rip, n: uint8(n), b: buf}
	if sv, ok := c.m.natives[rip]; ok {
		key.native = uint16(sv)
	}
	if _, ok := c.m.watches[rip]; ok {
		key.watch = true
	}
	if v, ok := c.m.memo.m.Load(key); ok {
		in := v.(*inst)
		c.m.decodes[rip] = sharedDecode{in: in, code: buf, n: uint8(n)}
		return in, true, nil
	}
	in, err := decodeInst(buf[:n], rip)
	if err != nil {
		if n < len(buf) && n < 15 {
			// Maybe the instruction runs into a page we may not fetch.
			if probe, perr := decodeInst(append(buf[:n:n], make([]byte, 15-n)...), rip); perr == nil && int(probe.len) > n {
				a := rip + uint64(n)
				c.pageFault(a, AccessExec, c.lookup(a>>pageShift) != nil)
				return nil, false, nil
			}
		}
		return nil, false, c.m.wrapErr(c, err)
	}
	in.native, in.watch = key.native, key.watch
	in.special = in.native != 0 || in.watch
	c.m.decodes[rip] = sharedDecode{in: in, code: buf, n: uint8(n)}
	c.m.memo.store(key, in)
	return in, true, nil
}

// decodeMemo holds decoded instructions by address, the bytes fetched
// there and the machine's annotations of the address (its native service,
// whether an injection rule watches it), for the machines after the one
// that decoded them: each machine's CPUs decode the slice's code again
// (decode caches belong to a machine), and in exploration's short
// shrinking runs decoding was a fifth of the CPU, in the 10 runs of
// text-poke-bp that `patchtrace bench` times about 5 %. An inst is a
// function of exactly the key and is never changed once made, so
// machines, also concurrent ones, share them; a changed byte is another
// key. The runs of one Snapshot share its memo; every other machine
// shares processMemo.
type decodeMemo struct {
	m sync.Map // decodeKey -> *inst
	n atomic.Int64
}

// maxDecodeMemo bounds a memo's instructions (code rewritten at random
// could otherwise make new keys run after run).
const maxDecodeMemo = 1 << 16

type decodeKey struct {
	rip    uint64
	n      uint8 // bytes fetched (fewer than 15 before a page it may not fetch)
	b      [15]byte
	native uint16 // inst.native: the machine's native service at rip
	watch  bool   // inst.watch: an injection rule watches rip
}

// processMemo is the decode memo of the machines that do not run from a
// Snapshot: a process that runs many (check over seeds, bench, tests)
// decodes each instruction once. Bounded as any memo (maxDecodeMemo).
var processMemo = &decodeMemo{}

func (d *decodeMemo) store(k decodeKey, in *inst) {
	if d.n.Load() < maxDecodeMemo {
		if _, loaded := d.m.LoadOrStore(k, in); !loaded {
			d.n.Add(1)
		}
	}
}

// sharedDecode is the machine's latest decode at an address: the bytes it
// was decoded from (n of them fetchable, the rest zero) and the inst.
type sharedDecode struct {
	in   *inst
	code [15]byte
	n    uint8
}

// serialize drops this CPU's decodes of bytes that changed since it last
// serialized (they were only kept in the stale-fetch model).
func (c *CPU) serialize(cause SerializeCause) {
	c.resync()
	if c.m.sink != nil {
		e := c.event(EvSerialize)
		e.Cause = cause
		if cause == SerStart && c.m.regs {
			// The CPU's initial registers: every register delta.
			e.RegMask = 1<<NumRegs - 1
			for i, r := range RegIndex {
				e.Regs[i] = c.R[r]
			}
			e.Regs[RegFlags] = c.RFLAGS
		}
		c.m.emit(c, e)
	}
}

// resync drops this CPU's decodes of bytes that changed since it last
// serialized: a serializing instruction's effect on fetch.
func (c *CPU) resync() {
	for _, dp := range c.dlist {
		if dp.changed() {
			dp.reset(c)
		}
	}
}
