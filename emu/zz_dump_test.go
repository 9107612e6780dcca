package emu

import (
	"bufio"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

func TestZZDump(t *testing.T) {
	out := os.Getenv("ZZ_DUMP")
	if out == "" {
		t.Skip()
	}
	f, _ := os.Create(out)
	defer f.Close()
	w := bufio.NewWriter(f)
	defer w.Flush()
	h := sha256.New()
	emit := func(code []byte) {
		in, err := decodeInst(code, 0x1000)
		var s string
		if err != nil {
			var u *UnsupportedError
			if errors.As(err, &u) {
				s = fmt.Sprintf("% x => ERR %s undec=%v", code, err.Error(), u.Undecoded)
			} else {
				s = fmt.Sprintf("% x => ERR %v", code, err)
			}
		} else {
			s = fmt.Sprintf("% x => len=%d op=%v sem=%+v", code[:in.len], in.len, in.op, in.sem)
		}
		h.Write([]byte(s))
		fmt.Fprintln(w, s)
	}
	pre := [][]byte{nil, {0x66}, {0x67}, {0xf2}, {0xf3}, {0xf0}, {0x48}, {0x41}, {0x65}, {0x66, 0x48}, {0xf0, 0x48}, {0x40}}
	tail := []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc}
	for _, p := range pre {
		for op := 0; op < 256; op++ {
			for _, two := range []bool{false, true} {
				for modrm := 0; modrm < 256; modrm++ {
					code := append([]byte(nil), p...)
					if two {
						code = append(code, 0x0f)
					}
					code = append(code, byte(op), byte(modrm))
					code = append(code, tail...)
					emit(code)
				}
			}
		}
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200000; i++ {
		code := make([]byte, 16)
		r.Read(code)
		emit(code)
	}
	elfs, _ := filepath.Glob("../scenarios/*/*.elf")
	for _, e := range elfs {
		ef, err := elf.Open(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range ef.Sections {
			if sec.Flags&elf.SHF_EXECINSTR == 0 {
				continue
			}
			b, _ := sec.Data()
			for off := range b {
				end := min(off+16, len(b))
				emit(b[off:end])
			}
		}
		ef.Close()
	}
	t.Logf("sum %x", h.Sum(nil))
}

func BenchmarkZZDecode(b *testing.B) {
	var codes [][]byte
	elfs, _ := filepath.Glob("../scenarios/*/*.elf")
	for _, e := range elfs {
		ef, _ := elf.Open(e)
		for _, sec := range ef.Sections {
			if sec.Flags&elf.SHF_EXECINSTR == 0 {
				continue
			}
			bb, _ := sec.Data()
			for off := 0; off < len(bb); {
				in, err := decodeInst(bb[off:], 0x1000)
				if err != nil {
					off++
					continue
				}
				codes = append(codes, bb[off:off+int(in.len)])
				off += int(in.len)
			}
		}
		ef.Close()
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, c := range codes {
			decodeInst(c, 0x1000)
		}
	}
	b.ReportMetric(float64(len(codes)), "insts")
}
