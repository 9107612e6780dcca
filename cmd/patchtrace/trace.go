package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/analyze/report"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/internal/progress"
	"github.com/patchtrace/patchtrace/record"
)

func cmdRecord(env *cmdEnv, args []string) int {
	fs := newFlags(env, "record")
	out := fs.String("o", "", "output trace file (default SCENARIO-seedN.arrow)")
	rf := addRunFlags(fs)
	addTraceFlags(fs, &rf.opt)
	force := fs.Bool("force", false, "replace an existing output file")
	batch := fs.Int("batch-rows", 0, "rows per record batch (default: the format's)")
	spec, arg, code, done := parseScenarioArgs(env, fs, args)
	if done {
		return code
	}
	if code, bad := rf.check(env, fs); bad {
		return code
	}
	if *batch < 0 {
		return usageErr(env, fs, "record: --batch-rows %d: must be 0 (the format's default) or positive", *batch)
	}
	seed := &rf.opt.Seed
	path := *out
	if path == "" {
		path = fmt.Sprintf("%s-seed%d.arrow", spec.ID, *seed)
	}
	if err := refuseInput(path, scenarioFiles(arg, spec)...); err != nil {
		// --force or not: the trace would replace the scenario it
		// records (its slice ELF, or its scenario file).
		return errorf(env, "record: -o: %v", err)
	}
	start := time.Now()
	res, err := record.Run(spec, path, record.Options{
		Options:   rf.opt,
		Force:     *force,
		BatchRows: *batch,
	})
	if err != nil && (res == nil || check.Ended(spec, res.Result) != check.Stopped) {
		return errorf(env, "%v", err)
	}
	elapsed := time.Since(start)
	st, _ := os.Stat(path)
	var size int64
	if st != nil {
		size = st.Size()
	}
	fmt.Fprintf(env.stdout, "wrote %s: %d events (%d instructions), %d bytes (%.2f B/event), %d decisions, %.2fs\n",
		path, res.Events, res.Insns, size, float64(size)/float64(max(res.Events, 1)), len(res.Decisions), elapsed.Seconds())
	fmt.Fprintf(env.stdout, "outcome: %s (%s)\n", res.Stop, outcomeDetail(res.Result))
	return outcomeExit(env, spec, res.Result)
}

type inspectReport struct {
	File      string            `json:"file"`
	Version   int               `json:"format_version"`
	Scenario  string            `json:"scenario"`
	CPUs      int               `json:"cpus"`
	Seed      uint64            `json:"seed"`
	Quirks    map[string]string `json:"quirks"`
	Tool      string            `json:"tool_version"`
	Status    string            `json:"status"`
	Outcome   string            `json:"outcome"` // "" when not recorded (format versions 1, 2; truncated files)
	Detail    string            `json:"outcome_detail"`
	Truncated bool              `json:"truncated"`
	Warning   string            `json:"warning,omitempty"`
	Events    uint64            `json:"events"`
	Loads     bool              `json:"loads"` // the trace has a load row for every data read (format version 4, not --no-loads)
	Regs      bool              `json:"regs"`  // the trace has register deltas (format version 4, not --no-regs)
	Batches   int               `json:"batches"`
	Decisions int               `json:"decisions"`
	Dropped   []format.Drop     `json:"dropped"`
	Missing   uint64            `json:"missing_events"` // sequence numbers skipped beyond the dropped ones (rows filtered out)
	// Contradiction says how the rows contradict what the metadata says
	// the trace records (format.RecordedCheck): a rewritten metadata.
	Contradiction string            `json:"contradiction,omitempty"`
	ByKind        map[string]uint64 `json:"events_by_kind"`
	ByCPU         map[string]uint64 `json:"events_by_cpu"`
	Symbols       int               `json:"symbols"`
	ELFBytes      int               `json:"elf_bytes"`
	SymbolList    []format.Symbol   `json:"symbol_table,omitempty"`
	Columns       []columnSize      `json:"columns,omitempty"`
	FileBytes     int64             `json:"file_bytes"`
}

// columnSize is one column's stored bytes (inspect --columns).
type columnSize struct {
	Name     string  `json:"name"`
	Bytes    int64   `json:"bytes"`          // validity and values, compressed, as stored
	Validity int64   `json:"validity_bytes"` // of which validity bitmaps
	Raw      int64   `json:"raw_bytes"`      // the values uncompressed
	NonNull  int64   `json:"non_null"`       // rows with a value
	PerEvent float64 `json:"bytes_per_event"`
}

func cmdInspect(env *cmdEnv, args []string) int {
	fs := newFlags(env, "inspect")
	asJSON := fs.Bool("json", false, "print JSON")
	syms := fs.Bool("symbols", false, "also list the symbol table")
	cols := fs.Bool("columns", false, "also list each column's stored size (compressed bytes, per event, share of the file)")
	extract := fs.String("extract-elf", "", "also write the slice ELF the trace carries to `FILE` (for gdb, objdump, addr2line)")
	force := fs.Bool("force", false, "replace an existing --extract-elf FILE")
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) != 1 {
		return usageErr(env, fs, "inspect: %s", oneFile(pos))
	}
	r, err := format.Open(pos[0])
	if err != nil {
		return errorf(env, "inspect: %v", err)
	}
	defer r.Close()
	md := r.Meta()
	if *extract != "" {
		if len(md.ELF) == 0 {
			return errorf(env, "inspect: %s carries no slice ELF", pos[0])
		}
		if _, err := os.Lstat(*extract); err == nil && !*force {
			// Never a file replaced without --force, as every other
			// output (it replaced a scenario's slice ELF silently).
			return errorf(env, "inspect: --extract-elf: %s exists (use --force to replace it)", *extract)
		}
		if err := refuseInput(*extract, pos[0]); err != nil {
			return errorf(env, "inspect: --extract-elf: %v", err)
		}
		if err := writeFileAtomic(*extract, md.ELF); err != nil {
			return errorf(env, "inspect: --extract-elf: %v", err)
		}
	}
	rep := inspectReport{
		File: pos[0], Version: md.Version, Scenario: md.Scenario, CPUs: md.CPUs, Seed: md.Seed,
		Quirks: md.Quirks, Tool: md.ToolVersion, Status: md.Status, Truncated: r.Truncated(),
		Outcome: md.Outcome, Detail: format.Printable(md.OutcomeDetail), Loads: md.Loads, Regs: md.Regs,
		Batches: r.NumBatches(), Decisions: md.DecisionCount, Dropped: md.Dropped,
		ByKind: map[string]uint64{}, ByCPU: map[string]uint64{}, Symbols: len(md.Symbols), ELFBytes: len(md.ELF),
	}
	if rep.Dropped == nil {
		rep.Dropped = []format.Drop{}
	}
	if *syms {
		rep.SymbolList = md.Symbols
	}
	if st, err := os.Stat(pos[0]); err == nil {
		rep.FileBytes = st.Size()
	}
	recorded := format.NewRecordedCheck(md)
	for row, err := range r.Events() {
		if err != nil {
			return errorf(env, "inspect: %v", err)
		}
		recorded.Add(row)
		rep.Events++
		rep.ByKind[row.Kind.String()]++
		rep.ByCPU[fmt.Sprintf("cpu%d", row.CPU)]++
	}
	if *cols {
		sizes, err := r.ColumnSizes()
		if err != nil {
			return errorf(env, "inspect: %v", err)
		}
		for _, c := range sizes {
			rep.Columns = append(rep.Columns, columnSize{Name: c.Name, Bytes: c.Stored(), Validity: c.Validity, Raw: c.Raw,
				NonNull: c.NonNull, PerEvent: float64(c.Stored()) / float64(max(rep.Events, 1))})
		}
	}
	missing, first, err := r.SeqGaps()
	if err != nil {
		return errorf(env, "inspect: %v", err)
	}
	var declared uint64
	for _, d := range md.Dropped {
		declared += d.Count
	}
	if missing > declared {
		rep.Missing = missing - declared
	}
	rep.Contradiction = recorded.Problem()
	if r.Truncated() {
		rep.Warning = r.TruncatedError().Error()
		fmt.Fprintf(env.stderr, "patchtrace: warning: %s\n", rep.Warning)
	} else if rep.Contradiction != "" {
		rep.Warning = "the trace contradicts its metadata: " + rep.Contradiction + ": analyze judges it incomplete"
		fmt.Fprintf(env.stderr, "patchtrace: warning: %s\n", rep.Warning)
	} else if rep.Missing > 0 {
		rep.Warning = fmt.Sprintf("its sequence numbers skip %d events that patchtrace.dropped does not declare (the first %s): analyze judges it incomplete", rep.Missing, first)
		fmt.Fprintf(env.stderr, "patchtrace: warning: %s\n", rep.Warning)
	} else if rep.Outcome == "" {
		rep.Warning = fmt.Sprintf("outcome not recorded (format version %d)", rep.Version)
		fmt.Fprintf(env.stderr, "patchtrace: warning: %s\n", rep.Warning)
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return errorf(env, "%v", err)
		}
		return exitOK
	}
	w := env.stdout
	fmt.Fprintf(w, "%s: patchtrace trace, format version %d, written by %s\n", rep.File, rep.Version, format.Printable(rep.Tool))
	fmt.Fprintf(w, "scenario %s on %d CPUs, seed %d, quirks %s\n", rep.Scenario, rep.CPUs, rep.Seed, quirkString(rep.Quirks))
	state := "complete"
	switch {
	case rep.Truncated:
		state = "TRUNCATED: " + rep.Warning
	case rep.Missing > 0 || rep.Contradiction != "":
		state = "INCOMPLETE: " + rep.Warning
	}
	fmt.Fprintf(w, "%d events in %d batches, %s; %d decisions; %d symbols; slice ELF %d bytes; dropped events: %s\n",
		rep.Events, rep.Batches, state, rep.Decisions, rep.Symbols, rep.ELFBytes, dropString(rep.Dropped))
	fmt.Fprintf(w, "records: %s\n", recordedString(rep))
	switch {
	case rep.Truncated:
		fmt.Fprintf(w, "outcome: unknown (the file was cut before its footer)\n\n")
	case rep.Outcome == "":
		fmt.Fprintf(w, "outcome: not recorded (format version %d)\n\n", rep.Version)
	default:
		fmt.Fprintf(w, "outcome: %s (%s)\n\n", rep.Outcome, rep.Detail)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tEVENTS")
	for _, k := range sortedKeys(rep.ByKind) {
		fmt.Fprintf(tw, "%s\t%d\n", k, rep.ByKind[k])
	}
	fmt.Fprintln(tw, "\nCPU\tEVENTS")
	for _, k := range sortedKeys(rep.ByCPU) {
		fmt.Fprintf(tw, "%s\t%d\n", k, rep.ByCPU[k])
	}
	tw.Flush()
	if *cols {
		fmt.Fprintf(w, "\n%d bytes in the file, %.3f B/event\n", rep.FileBytes, float64(rep.FileBytes)/float64(max(rep.Events, 1)))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "COLUMN\tBYTES\tB/EVENT\tFILE%\tVALIDITY\tRAW\tNON-NULL\t")
		for _, c := range rep.Columns {
			fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.1f\t%d\t%d\t%d\t\n", c.Name, c.Bytes, c.PerEvent,
				100*float64(c.Bytes)/float64(max(rep.FileBytes, 1)), c.Validity, c.Raw, c.NonNull)
		}
		tw.Flush()
	}
	if *syms {
		fmt.Fprintln(w, "\nsymbols:")
		for _, s := range md.Symbols {
			fmt.Fprintf(w, "  0x%016x %6d %-16s %s\n", s.Addr, s.Size, format.Printable(s.Section), format.Printable(s.Name))
		}
	}
	return exitOK
}

// recordedString says which optional content a trace records.
func recordedString(rep inspectReport) string {
	var have, lack []string
	for _, c := range []struct {
		on   bool
		name string
	}{{rep.Loads, "loads"}, {rep.Regs, "register deltas"}} {
		if c.on {
			have = append(have, c.name)
		} else {
			lack = append(lack, c.name)
		}
	}
	s := strings.Join(have, ", ")
	if len(lack) > 0 {
		if s != "" {
			s += "; "
		}
		s += "no " + strings.Join(lack, ", no ")
		if rep.Version < 4 {
			s += fmt.Sprintf(" (format version %d has none)", rep.Version)
		}
	}
	return s
}

func quirkString(q map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(q) {
		parts = append(parts, format.Printable(k)+"="+format.Printable(q[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func dropString(d []format.Drop) string {
	if len(d) == 0 {
		return "none"
	}
	var parts []string
	for _, x := range d {
		parts = append(parts, fmt.Sprintf("%d after seq %d", x.Count, x.AfterSeq))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) && strings.HasPrefix(keys[i], "cpu") && strings.HasPrefix(keys[j], "cpu") {
			return len(keys[i]) < len(keys[j])
		}
		return keys[i] < keys[j]
	})
	return keys
}

func cmdExport(env *cmdEnv, args []string) int {
	fset := newFlags(env, "export")
	out := fset.String("parquet", "", "write the events as zstd Parquet to this file")
	pf := fset.String("perfetto", "", "write a Perfetto trace (protobuf TrackEvent) to this file, for ui.perfetto.dev")
	force := fset.Bool("force", false, "replace an existing output file")
	allowTrunc := fset.Bool("allow-truncated", false, "export the complete batches of a truncated trace (default: --parquet refuses it, exit status 2)")
	quiet := quietFlag(fset)
	pos, code, done := parseFlags(env, fset, args)
	if done {
		return code
	}
	if len(pos) != 1 {
		return usageErr(env, fset, "export: %s", oneFile(pos))
	}
	if *out == "" && *pf == "" {
		return usageErr(env, fset, "export: give --parquet OUT, --perfetto OUT or both")
	}
	if *out != "" && *out == *pf {
		return usageErr(env, fset, "export: --parquet and --perfetto name the same file %s", *out)
	}
	for _, o := range []struct{ flag, path string }{{"--parquet", *out}, {"--perfetto", *pf}} {
		if o.path == "" {
			continue
		}
		if err := refuseInput(o.path, pos[0]); err != nil {
			return errorf(env, "export: %s: %v", o.flag, err)
		}
	}
	if *pf != "" {
		// Progress: bytes written (the total is not known ahead), and
		// what is being done.
		meter := startProgress(env, *quiet, progress.Config{Label: "export", Unit: "bytes written"})
		if err := format.CheckOutput(*pf, *force); err != nil {
			return meterErr(env, meter, "export: %v", err)
		}
		code := exportPerfetto(env, meter, pos[0], *pf)
		meter.Done()
		if code != exitOK || *out == "" {
			return code
		}
	}
	if err := format.CheckOutput(*out, *force); err != nil {
		return errorf(env, "export: %v", err)
	}
	r, err := format.Open(pos[0])
	if err != nil {
		return errorf(env, "export: %v", err)
	}
	defer r.Close()
	// Progress: events converted, out of the trace's.
	meter := startProgress(env, *quiet, progress.Config{Label: "export", Unit: "events", Total: int64(r.NumEvents())})
	defer meter.Done()
	if r.Truncated() {
		// A Parquet file of part of a run reads like a whole one: it
		// is written only when asked for.
		if !*allowTrunc {
			return meterErr(env, meter, "export: %v; the Parquet file would hold only the %d events of its complete batches: --allow-truncated exports them", r.TruncatedError(), r.NumEvents())
		}
		meter.Above(func() {
			fmt.Fprintf(env.stderr, "patchtrace: warning: %v; exporting the complete batches\n", r.TruncatedError())
		})
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".*.partial")
	if err != nil {
		return meterErr(env, meter, "export: %v", err)
	}
	tmp.Chmod(0o644)
	meter.Note("writing " + *out)
	// Hide Close from the exporter: the file is closed (and synced) here.
	if err := format.ExportParquetProgress(r, struct{ io.Writer }{tmp}, func(n int) { meter.Add(int64(n)) }); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return meterErr(env, meter, "export: %v", err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return meterErr(env, meter, "export: %v", err)
	}
	if err := format.CheckOutput(*out, *force); err != nil {
		os.Remove(tmp.Name())
		return meterErr(env, meter, "export: %v", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		os.Remove(tmp.Name())
		return meterErr(env, meter, "export: %v", err)
	}
	meter.Done()
	fmt.Fprintf(env.stdout, "wrote %s: %d events\n", *out, r.NumEvents())
	return exitOK
}

// oneFile says what is wrong with pos for a command taking one trace FILE.
func oneFile(pos []string) string {
	if len(pos) == 0 {
		return "no trace FILE given"
	}
	return fmt.Sprintf("one trace FILE at a time (got %s)", strings.Join(pos, " "))
}

// exportPerfetto analyzes the trace (for the findings' flows) and writes
// it as a Perfetto trace to out, whole or not at all.
func exportPerfetto(env *cmdEnv, meter *progress.Meter, trace, out string) int {
	meter.Note("analyzing " + trace)
	res, err := analyzeFile(trace, analyze.All(), analyze.AllowTruncated())
	if err != nil {
		return meterErr(env, meter, "export: %v", err)
	}
	// Streamed into a temporary file renamed into place: a long run's
	// Perfetto trace is not held in memory, and out is never half-written.
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".*.partial")
	if err != nil {
		return meterErr(env, meter, "export: %v", err)
	}
	meter.Note("writing " + out)
	err = report.WritePerfetto(&countingWriter{tmp, meter}, trace, res)
	err = errors.Join(err, tmp.Chmod(0o644), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return meterErr(env, meter, "export: %v", err)
	}
	meter.Above(func() {
		fmt.Fprintf(env.stdout, "wrote %s: %d events as a Perfetto trace (%d findings as flows)\n", out, res.Events, len(res.Findings))
	})
	return exitOK
}

// countingWriter counts the bytes written through it on a progress meter.
type countingWriter struct {
	w io.Writer
	m *progress.Meter
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.m.Add(int64(n))
	return n, err
}
