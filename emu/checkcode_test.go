package emu

import "testing"

// TestCheckCode checks the classification tools get from the decoder the
// machine runs.
func TestCheckCode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  []byte
		class CodeClass
		n     int
	}{
		{"mov", []byte{0x48, 0x89, 0xc7}, CodeOK, 3},
		{"lock add", []byte{0xf0, 0x48, 0x01, 0x07}, CodeOK, 4},
		{"nop5", []byte{0x0f, 0x1f, 0x44, 0x00, 0x00}, CodeOK, 5},
		{"ud2", []byte{0x0f, 0x0b}, CodeFault, 2},
		{"lock mov", []byte{0xf0, 0x48, 0x89, 0x07}, CodeFault, 4},
		{"x87 fld", []byte{0xd9, 0xc0}, CodeUnsupported, 2},
		{"sse movups", []byte{0x0f, 0x10, 0xc1}, CodeUnsupported, 3},
		{"wrmsr", []byte{0x0f, 0x30}, CodeOK, 2},
		{"rdmsr", []byte{0x0f, 0x32}, CodeOK, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckCode(append(tc.code, make([]byte, 16)...), 0xffffffff81000000)
			if got.Class != tc.class || got.Len != tc.n {
				t.Errorf("CheckCode(% x) = %+v, want class %d, len %d", tc.code, got, tc.class, tc.n)
			}
			if msr := tc.name == "wrmsr" || tc.name == "rdmsr"; got.NeedsIBT != msr {
				t.Errorf("CheckCode(% x): NeedsIBT %v, want %v", tc.code, got.NeedsIBT, msr)
			}
			if got.Text == "" {
				t.Errorf("CheckCode(% x): no text", tc.code)
			}
		})
	}
	if !IsService("text_poke") || IsService("traced_fn") {
		t.Error("IsService: text_poke must be a service, traced_fn not")
	}
}
