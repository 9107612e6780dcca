package slice

import "testing"

func TestPercpuStride(t *testing.T) {
	for _, tc := range []struct{ size, want uint64 }{
		{1, 2 * PageSize}, {PageSize, 2 * PageSize}, {PageSize + 1, 3 * PageSize}, {MaxPercpuBytes, MaxPercpuBytes + PageSize},
	} {
		if got := PercpuStride(tc.size); got != tc.want {
			t.Errorf("PercpuStride(%#x) = %#x, want %#x", tc.size, got, tc.want)
		}
	}
	// Every CPU's area lies in the range Reserved keeps for them.
	if hi := PercpuBase + MaxCPUs*PercpuStride(MaxPercpuBytes); hi > Reserved[0].Hi {
		t.Errorf("per-CPU areas end at %#x, past the reserved %#x", hi, Reserved[0].Hi)
	}
}

func TestBootStack(t *testing.T) {
	lo, top := BootStack(0)
	if lo != BootStackTop || top != BootStackTop+BootStackLen {
		t.Errorf("cpu 0: [%#x, %#x)", lo, top)
	}
	lo1, _ := BootStack(1)
	if lo1-top < PageSize {
		t.Errorf("no guard page between cpu 0's stack (top %#x) and cpu 1's (%#x)", top, lo1)
	}
	if _, top := BootStack(MaxCPUs - 1); top > Reserved[1].Hi {
		t.Errorf("the last boot stack ends at %#x, past the reserved %#x", top, Reserved[1].Hi)
	}
}
