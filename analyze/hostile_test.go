package analyze_test

import (
	"strings"
	"testing"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/record"
	"github.com/patchtrace/patchtrace/replay"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// hostileMeta is a real trace's metadata (text-poke-bp's slice).
func hostileMeta(t testing.TB) format.Meta {
	t.Helper()
	spec, err := scenario.Load(scenarios.FS, "text-poke-bp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := emu.LoadImage(spec.ID, spec.ELF)
	if err != nil {
		t.Fatal(err)
	}
	return record.Meta(spec, img, spec.CPUs, 1)
}

// TestHostileRows: rows fed to the analyzers directly (not through a
// trace reader, which checks the same) with values out of range are
// refused with an error instead of indexing per-CPU state out of bounds
// (a cpu at or above the trace's CPU count panicked) or looping by a
// corrupt size (0xffffffff looped byte by byte for minutes).
func TestHostileRows(t *testing.T) {
	md := hostileMeta(t)
	text := md.Symbols[len(md.Symbols)/2].Addr
	for _, tc := range []struct {
		name string
		row  format.Row
		want string
	}{
		{"insn on cpu = cpus", format.Row{Seq: 1, Kind: format.KindInsn, CPU: uint16(md.CPUs), RIP: text, Len: 1}, "cpu"},
		{"write on cpu 65535", format.Row{Seq: 1, Kind: format.KindWrite, CPU: 65535, Addr: 0x1000, HasAddr: true, Size: 8}, "cpu 65535"},
		{"write of 0xffffffff bytes", format.Row{Seq: 1, Kind: format.KindWrite, Addr: text, HasAddr: true, Size: 0xffffffff}, "write of 4294967295 bytes"},
		{"perm of 2^32-1 pages", format.Row{Seq: 1, Kind: format.KindPerm, Addr: text, HasAddr: true, Size: 0xffffffff, PermNew: 7}, "perm change"},
		{"percpu_cpu", format.Row{Seq: 1, Kind: format.KindWrite, Addr: 0x1000, HasAddr: true, Size: 8, Percpu: true, PercpuCPU: 200}, "percpu_cpu 200"},
		{"kind 0", format.Row{Seq: 1}, "kind 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live, err := analyze.NewLive(&md, analyze.All())
			if err != nil {
				t.Fatal(err)
			}
			err = live.Append(&tc.row)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Append = %v, want an error with %q", err, tc.want)
			}
			live.Finish()
			// analyze.Run refuses it too (it skipped the row and went on
			// to a clean verdict).
			st, err := replay.NewState(&md)
			if err != nil {
				t.Fatal(err)
			}
			rows := func(yield func(*format.Row, error) bool) { yield(&tc.row, nil) }
			if _, err := analyze.Run(st, rows, analyze.All()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
