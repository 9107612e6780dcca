package slicebuild

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestCheckInsnsMSR: a slice with RDMSR/WRMSR (ibt-seal switches IBT off
// and on through IA32_S_CET) passes the check only for a scenario with
// quirks.ibt; without it the machine would stop on them.
func TestCheckInsnsMSR(t *testing.T) {
	raw, err := os.ReadFile("../../scenarios/ibt-seal/ibt-seal.elf")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckInsns("ibt-seal", raw, true); err != nil {
		t.Fatalf("with quirks.ibt: %v", err)
	}
	err = CheckInsns("ibt-seal", raw, false)
	var ie *InsnError
	if !errors.As(err, &ie) {
		t.Fatalf("without quirks.ibt: err %v, want an *InsnError", err)
	}
	for _, want := range []string{"rdmsr", "wrmsr", "quirks.ibt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("without quirks.ibt: %q does not name %s", err, want)
		}
	}
}
