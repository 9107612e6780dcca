package explore

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/emu"
)

var update = flag.Bool("update", false, "rewrite testdata/findings_schema.golden from the findings.parquet explore writes")

// TestFindingsSchema pins the schema of findings.parquet as written (the
// Parquet columns with their physical and logical types and nullability,
// the Arrow schema stored in the file, the codec and writer), as
// format/testdata/schema.golden pins the trace's: DuckDB queries and
// notebooks over explore's output read these names and types, so a change
// must be deliberate (go test ./explore -run TestFindingsSchema -update).
func TestFindingsSchema(t *testing.T) {
	const golden = "testdata/findings_schema.golden"
	got := findingsSchemaText(t)
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./explore -run TestFindingsSchema -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("findings.parquet's schema changed; if deliberate, rerun with -update.\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// findingsSchemaText writes a findings.parquet of two rows (one with a
// trace, one without) and describes the file's schema in a stable text form.
func findingsSchemaText(t *testing.T) string {
	t.Helper()
	f := &analyze.Finding{Analyzer: "missed-call", Severity: "error", CPU: 1, Symbol: "traced_fn", Where: "traced_fn+0x0",
		Message: "m", SeqFirst: 10, SeqLast: 12}
	log := []emu.Decision{{Kind: emu.DecStep, CPU: 1, N: 3}}
	rows := []findingRow{
		{sched: 7, hash: 0x1234, desc: "random", f: f, decisions: log},
		{sched: 7, hash: 0x1234, desc: "minimised: random", f: f, decisions: log, minimized: true, trace: "01-missed-call-traced_fn.arrow"},
	}
	var buf bytes.Buffer
	if err := writeFindingsParquet(&buf, &Result{Scenario: "s", Strategy: "random"}, rows); err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	md := pf.MetaData()
	if pf.NumRows() != int64(len(rows)) {
		t.Fatalf("%d rows, wrote %d", pf.NumRows(), len(rows))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "findings.parquet\ncreated_by %s\n\nparquet columns\n", md.GetCreatedBy())
	sc := md.Schema
	for i := 0; i < sc.NumColumns(); i++ {
		c := sc.Column(i)
		null := "required"
		if c.MaxDefinitionLevel() > 0 {
			null = "optional"
		}
		cc, err := md.RowGroup(0).ColumnChunk(i)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%2d %-14s %-10s %-31s %-8s %s\n", i, c.Name(), c.PhysicalType(), c.LogicalType(), null, cc.Compression())
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	as, err := fr.Schema()
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("\narrow schema (stored)\n")
	for i, f := range as.Fields() {
		null := "not null"
		if f.Nullable {
			null = "nullable"
		}
		fmt.Fprintf(&b, "%2d %-14s %-8s %s\n", i, f.Name, f.Type, null)
	}
	return b.String()
}
