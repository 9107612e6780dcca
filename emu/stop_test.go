package emu

import "testing"

// TestStopReasonString: every StopReason has its name (a keyed table, so a
// reason added out of order cannot shift the others), and an unknown one
// prints its number instead of panicking.
func TestStopReasonString(t *testing.T) {
	for _, tc := range []struct {
		s    StopReason
		want string
	}{
		{StopNone, "running"},
		{StopDone, "done"},
		{StopBudget, "budget"},
		{StopOops, "oops"},
		{StopPanic, "panic"},
		{StopHung, "hung"},
		{StopDecisions, "decisions-exhausted"},
		{StopError, "error"},
		{StopBug, "bug"},
		{StopUnsupported, "unsupported"},
		{StopUnsupported + 1, "StopReason(10)"},
		{255, "StopReason(255)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.s.String(); got != tc.want {
				t.Errorf("StopReason(%d).String() = %q, want %q", uint8(tc.s), got, tc.want)
			}
		})
	}
}
