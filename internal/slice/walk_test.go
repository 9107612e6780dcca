package slice

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// toyLength decodes a toy ISA: an instruction's first byte is its length;
// 0xff does not decode; 0 measures nothing.
func toyLength(code []byte) Length {
	return func(off int) (int, error) {
		if code[off] == 0xff {
			return 0, errors.New("bad byte")
		}
		return int(code[off]), nil
	}
}

func TestWalk(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    []byte
		want    []int
		errAt   int // -1: no error
		errText string
	}{
		{"all", []byte{1, 2, 0, 3, 0, 0, 1}, []int{0, 1, 3, 6}, -1, ""},
		{"last runs past the end", []byte{1, 4, 0}, []int{0, 1}, -1, ""},
		{"undecodable", []byte{2, 0, 0xff, 1}, []int{0}, 2, "offset 0x2: bad byte"},
		{"zero length", []byte{1, 0, 1}, []int{0}, 1, "zero-length"},
		{"empty", nil, nil, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Starts(len(tc.code), toyLength(tc.code))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("starts %v, want %v", got, tc.want)
			}
			var we *WalkError
			switch {
			case tc.errAt < 0 && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.errAt >= 0 && (!errors.As(err, &we) || we.Off != tc.errAt || !strings.Contains(err.Error(), tc.errText)):
				t.Errorf("error %v, want a *WalkError at %#x saying %q", err, tc.errAt, tc.errText)
			}
		})
	}
	t.Run("yield stops", func(t *testing.T) {
		var seen []int
		err := Walk(4, toyLength([]byte{1, 1, 1, 1}), func(off, n int) bool {
			seen = append(seen, off)
			return off < 1
		})
		if err != nil || !reflect.DeepEqual(seen, []int{0, 1}) {
			t.Errorf("seen %v, %v; want [0 1]", seen, err)
		}
	})
}
