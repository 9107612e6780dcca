package report

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/replay"
)

// Perfetto's trace format (protos/perfetto/trace/perfetto_trace.proto):
// a Trace is `repeated TracePacket packet = 1`, so packets are streamed.
// Field numbers of the messages used (TrackEvent, TrackDescriptor):
const (
	pfPacket         = 1  // Trace.packet
	pfTimestamp      = 8  // TracePacket.timestamp (uint64)
	pfSeqID          = 10 // TracePacket.trusted_packet_sequence_id (uint32)
	pfTrackEvent     = 11 // TracePacket.track_event
	pfSeqFlags       = 13 // TracePacket.sequence_flags (uint32)
	pfTrackDesc      = 60 // TracePacket.track_descriptor
	pfTDUUID         = 1  // TrackDescriptor.uuid (uint64)
	pfTDName         = 2  // TrackDescriptor.name
	pfTDParent       = 5  // TrackDescriptor.parent_uuid (uint64)
	pfTDRank         = 12 // TrackDescriptor.sibling_order_rank (int32)
	pfTDOrdering     = 11 // TrackDescriptor.child_ordering (enum; 3 EXPLICIT)
	pfTEType         = 9  // TrackEvent.type (1 begin, 2 end, 3 instant)
	pfTETrack        = 11 // TrackEvent.track_uuid (uint64)
	pfTEFlow         = 47 // TrackEvent.flow_ids (fixed64)
	pfTEFlowEnd      = 48 // TrackEvent.terminating_flow_ids (fixed64)
	pfTEAnnotation   = 4  // TrackEvent.debug_annotations
	pfDAName         = 10 // DebugAnnotation.name
	pfDAString       = 6  // DebugAnnotation.string_value
	pfInterned       = 12 // TracePacket.interned_data
	pfIDCategories   = 1  // InternedData.event_categories (EventCategory)
	pfIDNames        = 2  // InternedData.event_names (EventName)
	pfIIDField       = 1  // EventName.iid, EventCategory.iid
	pfIIDName        = 2  // EventName.name, EventCategory.name
	pfTENameIID      = 10 // TrackEvent.name_iid
	pfTECategoryIID  = 3  // TrackEvent.category_iids
	seqIncrCleared   = 1  // TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
	seqNeedsIncr     = 2  // TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
	teBegin, teEnd   = 1, 2
	teInstant        = 3
	orderingExplicit = 3
)

type pb []byte

func (b pb) varint(field int, v uint64) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3)
	return binary.AppendUvarint(b, v)
}

func (b pb) bytes(field int, v []byte) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func (b pb) str(field int, s string) pb { return b.bytes(field, []byte(s)) }

func (b pb) fixed64(field int, v uint64) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3|1)
	return binary.LittleEndian.AppendUint64(b, v)
}

// pfWriter streams packets on one trusted sequence. Event names and
// categories are interned: each is sent once, in the interned_data of the
// first packet that uses it, and referred to by iid after.
type pfWriter struct {
	w       *bufio.Writer
	first   bool
	err     error
	names   map[string]uint64
	cats    map[string]uint64
	pending pb // interned_data entries for the next packet
}

func (p *pfWriter) intern(m map[string]uint64, field int, s string) uint64 {
	if iid, ok := m[s]; ok {
		return iid
	}
	iid := uint64(len(m)) + 1
	m[s] = iid
	p.pending = p.pending.bytes(field, pb(nil).varint(pfIIDField, iid).str(pfIIDName, s))
	return iid
}

func (p *pfWriter) packet(ts uint64, hasTS bool, body pb) {
	pkt := pb(nil)
	if hasTS {
		pkt = pkt.varint(pfTimestamp, ts)
	}
	pkt = pkt.varint(pfSeqID, 1)
	if p.first {
		pkt = pkt.varint(pfSeqFlags, seqIncrCleared|seqNeedsIncr)
		p.first = false
	} else {
		pkt = pkt.varint(pfSeqFlags, seqNeedsIncr)
	}
	if len(p.pending) > 0 {
		pkt = pkt.bytes(pfInterned, p.pending)
		p.pending = p.pending[:0]
	}
	pkt = append(pkt, body...)
	out := pb(nil).bytes(pfPacket, pkt)
	if _, err := p.w.Write(out); err != nil && p.err == nil {
		p.err = err
	}
}

func (p *pfWriter) track(uuid, parent uint64, name string, rank int) {
	td := pb(nil).varint(pfTDUUID, uuid).str(pfTDName, name)
	if parent != 0 {
		td = td.varint(pfTDParent, parent)
	}
	td = td.varint(pfTDRank, uint64(int64(rank))).varint(pfTDOrdering, orderingExplicit)
	p.packet(0, false, pb(nil).bytes(pfTrackDesc, td))
}

func (p *pfWriter) event(ts uint64, typ int, track uint64, name, cat string, flows, ends []uint64, args [][2]string) {
	te := pb(nil).varint(pfTEType, uint64(typ)).varint(pfTETrack, track)
	if name != "" {
		te = te.varint(pfTENameIID, p.intern(p.names, pfIDNames, name))
	}
	if cat != "" {
		te = te.varint(pfTECategoryIID, p.intern(p.cats, pfIDCategories, cat))
	}
	for _, f := range flows {
		te = te.fixed64(pfTEFlow, f)
	}
	for _, f := range ends {
		te = te.fixed64(pfTEFlowEnd, f)
	}
	for _, a := range args {
		te = te.bytes(pfTEAnnotation, pb(nil).str(pfDAName, a[0]).str(pfDAString, a[1]))
	}
	p.packet(ts, true, pb(nil).bytes(pfTrackEvent, te))
}

// Track uuids: CPU c is c+1; task tracks are numbered from 1000 as they
// first appear (small numbers: every event carries its track's uuid).
func cpuTrack(c int) uint64 { return uint64(c) + 1 }

// pfCPU is one CPU's open slices (on its current task's track).
type pfCPU struct {
	task  uint32
	has   bool
	open  []string // slice names, outermost first: traps and the current function
	fn    int      // index in open of the function slice, -1 none
	track uint64
}

// WritePerfetto writes the trace at path (res is its analysis) as a
// Perfetto protobuf trace (TrackEvent): a track per CPU with a child track
// per task; slices for the function running (consecutive instructions in
// one symbol) nested in slices for each trap/interrupt from its delivery
// to its iretq; instants for text_poke writes, per-CPU stores, IPIs,
// scenario markers and faults; and per finding a flow through its story
// events across the CPUs. Timestamps are sequence numbers (1 ns each).
func WritePerfetto(w io.Writer, path string, res *analyze.Result) error {
	r, err := format.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	md := r.Meta()
	st, err := replay.NewState(md)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	p := &pfWriter{w: bufio.NewWriterSize(w, 1<<16), first: true, names: map[string]uint64{}, cats: map[string]uint64{}}
	for c := 0; c < md.CPUs; c++ {
		p.track(cpuTrack(c), 0, fmt.Sprintf("cpu%d", c), c)
	}
	// Story steps by sequence number: each finding is one flow.
	type step struct {
		finding, k, n int
		text          string
	}
	steps := map[uint64][]step{}
	for i, f := range res.Findings {
		var seqs []uint64
		texts := map[uint64]string{}
		for _, line := range f.Story {
			if g := storySeq.FindStringSubmatch(line); g != nil {
				var s uint64
				fmt.Sscan(g[1], &s)
				if _, dup := texts[s]; !dup {
					seqs = append(seqs, s)
				}
				texts[s] = line
			}
		}
		for _, s := range f.Evidence {
			if _, dup := texts[s]; !dup {
				seqs = append(seqs, s)
				texts[s] = "evidence"
			}
		}
		sort.Slice(seqs, func(a, b int) bool { return seqs[a] < seqs[b] })
		for k, s := range seqs {
			steps[s] = append(steps[s], step{i, k, len(seqs), texts[s]})
		}
	}
	cpus := make([]pfCPU, md.CPUs)
	type cpuTask struct {
		cpu  int
		task uint32
	}
	tracks := map[cpuTask]uint64{}
	taskTrackOf := func(c int, t uint32) uint64 {
		u, ok := tracks[cpuTask{c, t}]
		if !ok {
			u = 1000 + uint64(len(tracks))
			tracks[cpuTask{c, t}] = u
			p.track(u, cpuTrack(c), fmt.Sprintf("cpu%d task %d", c, t), int(t))
		}
		return u
	}
	closeAll := func(cs *pfCPU, ts uint64) {
		for i := len(cs.open) - 1; i >= 0; i-- {
			p.event(ts, teEnd, cs.track, "", "", nil, nil, nil)
		}
		cs.open, cs.fn = cs.open[:0], -1
	}
	endFn := func(cs *pfCPU, ts uint64) {
		if cs.fn >= 0 {
			p.event(ts, teEnd, cs.track, "", "", nil, nil, nil)
			cs.open = cs.open[:cs.fn]
			cs.fn = -1
		}
	}
	var last uint64
	d := st.Syms.Describe
	for row, err := range r.Events() {
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		c := int(row.CPU)
		if c >= len(cpus) {
			return fmt.Errorf("%s: seq %d: cpu %d of %d", path, row.Seq, c, len(cpus))
		}
		cs := &cpus[c]
		ts := row.Seq
		last = ts
		if !cs.has || cs.task != row.Task {
			if cs.has {
				closeAll(cs, ts)
			}
			cs.task, cs.has, cs.fn = row.Task, true, -1
			cs.track = taskTrackOf(c, row.Task)
		}
		switch row.Kind {
		case format.KindInsn:
			name := "?"
			if s, ok := st.Syms.At(row.RIP); ok {
				name = s.Name
			}
			if cs.fn >= 0 && cs.open[cs.fn] == name {
				break
			}
			endFn(cs, ts)
			cs.fn = len(cs.open)
			cs.open = append(cs.open, name)
			p.event(ts, teBegin, cs.track, name, "function", nil, nil, nil)
		case format.KindTrap:
			endFn(cs, ts)
			name := format.VectorName(row.Vector)
			if row.Vector == 3 {
				name = "#BP (int3) at " + d(row.RIP-1)
			}
			cs.open = append(cs.open, name)
			p.event(ts, teBegin, cs.track, name, "trap", nil, nil, [][2]string{{"handler", d(row.Handler)}, {"rip", d(row.RIP)}})
		case format.KindIret:
			endFn(cs, ts)
			if n := len(cs.open); n > 0 {
				p.event(ts, teEnd, cs.track, "", "", nil, nil, nil)
				cs.open = cs.open[:n-1]
			}
		case format.KindWrite:
			if row.Alias {
				p.event(ts, teInstant, cs.track, "text_poke write "+d(row.Addr), "poke", nil, nil,
					[][2]string{{"bytes", fmt.Sprintf("%d: %s -> %s", row.Size, leBytes(row.Old, int(min(row.Size, 8))), leBytes(row.New, int(min(row.Size, 8))))}})
			} else if row.PercpuVar != "" {
				p.event(ts, teInstant, cs.track, fmt.Sprintf("%s[cpu%d] = %s", row.PercpuVar, row.PercpuCPU, d(row.New)), "percpu", nil, nil, nil)
			}
		case format.KindService:
			if row.Service == 7 {
				p.event(ts, teInstant, cs.track, fmt.Sprintf("pt_send_ipi(cpu %d, vector %#x)", int64(row.Args[0]), row.Args[1]), "ipi", nil, nil, nil)
			}
		case format.KindInject:
			p.event(ts, teInstant, cs.track, fmt.Sprintf("%s raised on cpu%d", format.VectorName(row.Vector), row.Addr), "ipi", nil, nil, nil)
		case format.KindMarker:
			name := fmt.Sprintf("marker %d", row.Args[0])
			if row.Msg != "" {
				name = "marker " + row.Msg
			}
			p.event(ts, teInstant, cs.track, fmt.Sprintf("%s = %d", name, row.Args[1]), "marker", nil, nil, nil)
		case format.KindFault:
			p.event(ts, teInstant, cs.track, "fault: "+row.Msg, "fault", nil, nil, nil)
		}
		for _, s := range steps[row.Seq] {
			f := res.Findings[s.finding]
			id := uint64(s.finding) + 1
			var flows, ends []uint64
			if s.k+1 < s.n {
				flows = []uint64{id}
			} else {
				ends = []uint64{id}
			}
			p.event(ts, teInstant, cs.track, fmt.Sprintf("F%d %s step %d/%d", s.finding+1, f.Analyzer, s.k+1, s.n), "finding", flows, ends,
				[][2]string{{"story", s.text}, {"finding", f.Message}})
		}
	}
	for c := range cpus {
		if cpus[c].has {
			closeAll(&cpus[c], last+1)
		}
	}
	if p.err != nil {
		return p.err
	}
	return p.w.Flush()
}
