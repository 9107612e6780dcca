package main

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite generated docs")

// TestScenariosDoc keeps docs/scenarios.md equal to `patchtrace scenarios
// --markdown` (refresh with go test ./cmd/patchtrace -run ScenariosDoc -update).
func TestScenariosDoc(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"scenarios", "--markdown"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	const path = "../../docs/scenarios.md"
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, _ := os.ReadFile(path)
	if !bytes.Equal(have, out.Bytes()) {
		t.Fatal("docs/scenarios.md is stale: run go test ./cmd/patchtrace -run ScenariosDoc -update")
	}
}
