package explore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
	"github.com/patchtrace/patchtrace/internal/check"
	"github.com/patchtrace/patchtrace/record"
)

// ShardDir is where a shard writes: DIR/scenario=<id>/shard=<i> (Hive
// partitioning, so DuckDB's read_parquet('DIR/**/*.parquet',
// hive_partitioning=true) and Spark see one table).
func ShardDir(dir, scenario string, shard int) string {
	return filepath.Join(dir, "scenario="+scenario, fmt.Sprintf("shard=%d", shard))
}

// FindingsSchema is the schema of findings.parquet: one row per finding of
// a violating schedule (minimized false) and one per finding of each
// minimised run (minimized true). testdata/findings_schema.golden pins it as
// written (TestFindingsSchema; -update rewrites it after a deliberate change).
var FindingsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "scenario", Type: arrow.BinaryTypes.String},
	{Name: "shard", Type: arrow.PrimitiveTypes.Int32},
	{Name: "strategy", Type: arrow.BinaryTypes.String},
	{Name: "schedule", Type: arrow.PrimitiveTypes.Int64},
	{Name: "schedule_hash", Type: arrow.BinaryTypes.String}, // 16 hex digits: readable by every engine (Spark has no unsigned 64-bit type)
	{Name: "schedule_desc", Type: arrow.BinaryTypes.String},
	{Name: "analyzer", Type: arrow.BinaryTypes.String},
	{Name: "severity", Type: arrow.BinaryTypes.String},
	{Name: "cpu", Type: arrow.PrimitiveTypes.Int32},
	{Name: "symbol", Type: arrow.BinaryTypes.String},
	{Name: "where", Type: arrow.BinaryTypes.String},
	{Name: "message", Type: arrow.BinaryTypes.String},
	{Name: "seq_first", Type: arrow.PrimitiveTypes.Int64},
	{Name: "seq_last", Type: arrow.PrimitiveTypes.Int64},
	{Name: "decisions", Type: arrow.BinaryTypes.Binary}, // emu.EncodeDecisions (patchtrace-decisions-v1)
	{Name: "decision_count", Type: arrow.PrimitiveTypes.Int32},
	{Name: "minimized", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "trace", Type: arrow.BinaryTypes.String, Nullable: true}, // relative to the shard directory
}, nil)

type findingRow struct {
	sched     int64
	hash      uint64
	desc      string
	f         *analyze.Finding
	decisions []emu.Decision
	minimized bool
	trace     string
}

// Summary is summary.json, next to findings.parquet.
type Summary struct {
	Scenario   string             `json:"scenario"`
	Strategy   string             `json:"strategy"`
	Shard      int                `json:"shard"`
	Shards     int                `json:"shards"`
	Schedules  int64              `json:"schedules"`
	Stopped    string             `json:"stopped"`
	Exhausted  bool               `json:"exhausted"`
	Digest     string             `json:"schedule_digest"` // sum of schedule hashes mod 2^64, hex
	Seconds    float64            `json:"seconds"`
	Verdict    string             `json:"verdict"`
	Violations []SummaryViolation `json:"violations"`
}

// SummaryViolation is one violation in summary.json.
type SummaryViolation struct {
	Target          Target      `json:"target"`
	Schedule        int64       `json:"schedule"`
	ScheduleHash    string      `json:"schedule_hash"`
	Desc            string      `json:"schedule_desc"`
	FoundSeconds    float64     `json:"found_seconds"`
	SchedulesBefore int64       `json:"schedules_before"`
	Shrink          ShrinkStats `json:"shrink"`
	Decisions       []string    `json:"minimized_decisions"`
	Trace           string      `json:"trace,omitempty"`
	Report          string      `json:"report,omitempty"`
}

// writeOutputs writes each violation's (minimised) run as a trace and its
// findings as JSON, then findings.parquet and summary.json.
func writeOutputs(res *Result, pm *Machine, opt *Options) error {
	dir := ShardDir(opt.OutDir, res.Scenario, res.Shard)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("explore: %w", err)
	}
	res.Dir = dir
	var rows []findingRow
	sum := Summary{Scenario: res.Scenario, Strategy: res.Strategy, Shard: res.Shard, Shards: res.Shards,
		Schedules: res.Schedules, Stopped: res.Stopped, Exhausted: res.Exhausted,
		Digest: fmt.Sprintf("%016x", res.Digest), Seconds: res.Elapsed.Seconds(), Verdict: res.Summary(),
		Violations: []SummaryViolation{}}
	for i, v := range res.Violations {
		for _, f := range uniqueTargets(v.Findings) {
			rows = append(rows, findingRow{sched: v.Schedule, hash: v.Hash, desc: v.Desc, f: f, decisions: v.Decisions})
		}
		log, min := v.Minimized, true
		if log == nil {
			log, min = v.Decisions, false
		}
		name := fmt.Sprintf("%02d-%s-%s", i+1, v.Target.Analyzer, sanitize(v.Target.Symbol))
		trace := filepath.Join(dir, name+".arrow")
		// A run the emulator stopped (unsupported instruction, error) is
		// a violation too: its trace is kept.
		if rr, err := record.Run(res.Spec, trace, record.Options{Force: true, Source: &emu.LogSource{Log: log}}); err != nil &&
			(rr == nil || check.Ended(res.Spec, rr.Result) != check.Stopped) {
			return fmt.Errorf("explore: write the failing run: %w", err)
		}
		ar, err := analyze.AnalyzeFile(trace, mustAll())
		if err != nil {
			return fmt.Errorf("explore: analyze %s: %w", trace, err)
		}
		if v.Target.Match(ar.Findings) == nil {
			return fmt.Errorf("explore: %s does not show %s when analyzed from the file", trace, v.Target)
		}
		var js bytes.Buffer
		if err := analyze.WriteJSON(&js, []*analyze.Result{ar}); err != nil {
			return err
		}
		report := filepath.Join(dir, name+".json")
		if err := writeFileAtomic(report, js.Bytes()); err != nil {
			return fmt.Errorf("explore: %w", err)
		}
		v.Trace, v.Report = trace, report
		if min {
			for _, f := range uniqueTargets(ar.Findings) {
				rows = append(rows, findingRow{sched: v.Schedule, hash: ScheduleHash(log), desc: "minimised: " + v.Desc, f: f,
					decisions: log, minimized: true, trace: name + ".arrow"})
			}
		}
		sv := SummaryViolation{Target: v.Target, Schedule: v.Schedule, ScheduleHash: fmt.Sprintf("%016x", v.Hash), Desc: v.Desc,
			FoundSeconds: v.Found.Seconds(), SchedulesBefore: v.SchedulesBefore, Shrink: v.Shrink,
			Trace: name + ".arrow", Report: name + ".json"}
		for _, d := range log {
			sv.Decisions = append(sv.Decisions, d.String())
		}
		sum.Violations = append(sum.Violations, sv)
	}
	if err := removeStale(dir, sum.Violations); err != nil {
		return fmt.Errorf("explore: %w", err)
	}
	var pq bytes.Buffer
	if err := writeFindingsParquet(&pq, res, rows); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "findings.parquet"), pq.Bytes()); err != nil {
		return fmt.Errorf("explore: %w", err)
	}
	js, _ := json.MarshalIndent(sum, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, "summary.json"), append(js, '\n')); err != nil {
		return fmt.Errorf("explore: %w", err)
	}
	return nil
}

func mustAll() []analyze.Analyzer { return analyze.All() }

// staleName matches the names writeOutputs gives a violation's files.
var staleName = regexp.MustCompile(`^[0-9]{2,}-[a-z-]+-.*\.(arrow|json)$`)

// removeStale removes the violation files an earlier run left in the
// shard's directory that this run did not write: beside this run's
// summary they would read as its results (a run that found nothing kept
// the last run's failing trace next to a summary saying no violation).
func removeStale(dir string, kept []SummaryViolation) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !staleName.MatchString(name) ||
			slices.ContainsFunc(kept, func(v SummaryViolation) bool { return v.Trace == name || v.Report == name }) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// uniqueTargets keeps the first finding of each target.
func uniqueTargets(fs []*analyze.Finding) []*analyze.Finding {
	seen := map[Target]bool{}
	var out []*analyze.Finding
	for _, f := range fs {
		if t := TargetOf(f); !seen[t] {
			seen[t] = true
			out = append(out, f)
		}
	}
	return out
}

func sanitize(s string) string {
	if s == "" {
		return "nosymbol"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}

// writeFindingsParquet writes rows as zstd Parquet in FindingsSchema.
func writeFindingsParquet(w *bytes.Buffer, res *Result, rows []findingRow) error {
	mem := memory.DefaultAllocator
	b := array.NewRecordBuilder(mem, FindingsSchema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(res.Scenario)
		b.Field(1).(*array.Int32Builder).Append(int32(res.Shard))
		b.Field(2).(*array.StringBuilder).Append(res.Strategy)
		b.Field(3).(*array.Int64Builder).Append(r.sched)
		b.Field(4).(*array.StringBuilder).Append(fmt.Sprintf("%016x", r.hash))
		b.Field(5).(*array.StringBuilder).Append(r.desc)
		b.Field(6).(*array.StringBuilder).Append(r.f.Analyzer)
		b.Field(7).(*array.StringBuilder).Append(string(r.f.Severity))
		b.Field(8).(*array.Int32Builder).Append(int32(r.f.CPU))
		b.Field(9).(*array.StringBuilder).Append(r.f.Symbol)
		b.Field(10).(*array.StringBuilder).Append(r.f.Where)
		b.Field(11).(*array.StringBuilder).Append(r.f.Message)
		b.Field(12).(*array.Int64Builder).Append(int64(r.f.SeqFirst))
		b.Field(13).(*array.Int64Builder).Append(int64(r.f.SeqLast))
		b.Field(14).(*array.BinaryBuilder).Append(emu.EncodeDecisions(r.decisions))
		b.Field(15).(*array.Int32Builder).Append(int32(len(r.decisions)))
		b.Field(16).(*array.BooleanBuilder).Append(r.minimized)
		if r.trace == "" {
			b.Field(17).AppendNull()
		} else {
			b.Field(17).(*array.StringBuilder).Append(r.trace)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCreatedBy("patchtrace explore"),
	)
	fw, err := pqarrow.NewFileWriter(FindingsSchema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return fmt.Errorf("explore: parquet: %w", err)
	}
	if err := fw.Write(rec); err != nil {
		fw.Close()
		return fmt.Errorf("explore: parquet: %w", err)
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("explore: parquet: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it into place, 0644 like the traces next to it (os.CreateTemp makes
// 0600: a CI job uploading the results as another user could not read
// findings.parquet and summary.json).
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.partial")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	err = errors.Join(werr, tmp.Chmod(0o644), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
