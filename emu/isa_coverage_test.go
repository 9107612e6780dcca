package emu

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestISACoverage: every op of the instruction table (isa.go) has a case
// the host CPU checks, so a gap in the differential tests cannot silently
// reappear when an op is added. A case is
//
//   - a golden line (testdata/insn/*.txt) in a "#!host" file naming the op
//     in its bytes (TestISAGoldens runs it on the host too),
//   - a #UD/ok line of testdata/insn/ud/invalid.txt (TestHostInvalidCorpus
//     runs it in a host child process), or
//   - an encoding of TestHostDiffForms (diffSpecs), TestHostDiffJcc,
//     TestHostDiffLoop or TestHostDiffStack16.
//
// An op user mode cannot run (privileged, or a trap the hostexec harness
// does not survive) is in hostUncheckable with the reason; it must still
// have an emulator golden line, and must not be listed if the host does
// check it.
func TestISACoverage(t *testing.T) {
	host, emuOnly := map[x86asm.Op][]string{}, map[x86asm.Op][]string{}
	addCode := func(m map[x86asm.Op][]string, code []byte, where string) {
		for off := 0; off < len(code); {
			in, err := decodeInst(code[off:], snippetCodeBase+uint64(off))
			if err != nil || in.len == 0 {
				return
			}
			m[in.op] = append(m[in.op], where)
			off += int(in.len)
		}
	}

	cases, _ := loadGoldens(t)
	for _, gc := range cases {
		where := fmt.Sprintf("%s:%d", gc.file, gc.line)
		if gc.onHost {
			addCode(host, gc.code, where)
		} else {
			addCode(emuOnly, gc.code, where)
		}
	}
	for _, l := range invalidCorpus(t) {
		if l.verdict == "#UD" || l.verdict == "ok" {
			// The first instruction is the one the verdict is about.
			if in, err := decodeInst(l.code, snippetCodeBase); err == nil {
				host[in.op] = append(host[in.op], l.where)
			}
		}
	}
	g := &diffGen{r: rand.New(rand.NewPCG(1, 2)), scratchAddr: goldenScratchAddr}
	defer func(a uint64) { diffScratchAddr = a }(diffScratchAddr)
	diffScratchAddr = g.scratchAddr // the generator's setups read it
	for _, spec := range diffSpecs() {
		for _, size := range spec.sizes {
			addCode(host, g.newCase(spec, size).code, "TestHostDiffForms/"+spec.name)
		}
	}
	for cc := range 16 {
		for _, near := range []bool{false, true} {
			name, code := jccDiffCode(cc, near)
			addCode(host, code, "TestHostDiffJcc/"+name)
		}
	}
	for _, lc := range loopDiffCodes() {
		addCode(host, lc.code, "TestHostDiffLoop/"+lc.name)
	}
	for _, sc := range stack16DiffCases(0) {
		addCode(host, hexBytes(t, sc.code), "TestHostDiffStack16/"+sc.name)
	}

	var missing []string
	for op := range isa {
		if isa[op].form == formAbsent {
			continue
		}
		o := x86asm.Op(op)
		reason, allowed := hostUncheckable[o]
		switch {
		case len(host[o]) != 0 && allowed:
			t.Errorf("%v: the host checks it (%s): remove it from hostUncheckable", o, host[o][0])
		case len(host[o]) != 0:
		case !allowed:
			missing = append(missing, o.String())
		case len(emuOnly[o]) == 0:
			t.Errorf("%v: in hostUncheckable (%s) but no golden line runs it on the emulator", o, reason)
		}
	}
	for o := range hostUncheckable {
		if isaOf(o).form == formAbsent {
			t.Errorf("%v: in hostUncheckable but not in the instruction table", o)
		}
	}
	sort.Strings(missing)
	if len(missing) != 0 {
		t.Errorf("%d table ops have no host-checked case (add a golden line to a #!host file in testdata/insn, "+
			"or a reason to hostUncheckable): %s", len(missing), strings.Join(missing, " "))
	}
}

// hostUncheckable lists the table ops the host CPU cannot run from the
// user-mode harness, with the reason. Each still needs an emulator golden.
var hostUncheckable = map[x86asm.Op]string{
	x86asm.IN:    "I/O port access needs IOPL or the TSS I/O bitmap: #GP(0) at CPL 3 (SDM Vol. 1 §19.5)",
	x86asm.OUT:   "I/O port access needs IOPL or the TSS I/O bitmap: #GP(0) at CPL 3 (SDM Vol. 1 §19.5)",
	x86asm.INSB:  "I/O port access: #GP(0) at CPL 3 (SDM Vol. 1 §19.5)",
	x86asm.INSW:  "I/O port access: #GP(0) at CPL 3 (SDM Vol. 1 §19.5)",
	x86asm.INSD:  "I/O port access: #GP(0) at CPL 3 (SDM Vol. 1 §19.5)",
	x86asm.OUTSB: "I/O port access: #GP(0) at CPL 3 (SDM Vol. 1 §19.5)",
	x86asm.OUTSW: "I/O port access: #GP(0) at CPL 3 (SDM Vol. 1 §19.5)",
	x86asm.OUTSD: "I/O port access: #GP(0) at CPL 3 (SDM Vol. 1 §19.5)",
	x86asm.CLI:   "privileged at CPL 3 with IOPL 0: #GP(0) (SDM Vol. 2 CLI)",
	x86asm.STI:   "privileged at CPL 3 with IOPL 0: #GP(0) (SDM Vol. 2 STI)",
	x86asm.HLT:   "privileged: #GP(0) at CPL 3 (SDM Vol. 2 HLT)",
	x86asm.IRETQ: "changes CS:RIP and SS:RSP to the frame's: the harness loses control (its CPL 0 checks are goldens in system.txt)",
	x86asm.IRETD: "changes CS:RIP and SS:RSP to the frame's: the harness loses control",
	x86asm.LRET:  "far return to the frame's CS:RIP: the harness loses control",
	x86asm.INT:   "INT n raises an exception the Go runtime does not survive in-process (#GP at CPL 3 through a DPL 0 gate, or SIGTRAP)",
	x86asm.ICEBP: "INT1 is a #DB trap (SIGTRAP) the in-process harness does not survive",
	x86asm.CPUID: "the host's CPUID describes the host; the emulator's is its own (TestCPUID)",
	x86asm.RDMSR: "privileged: #GP(0) at CPL 3 (SDM Vol. 2 RDMSR); IA32_S_CET only, with Quirks.IBT (TestIBTMSR*)",
	x86asm.WRMSR: "privileged: #GP(0) at CPL 3 (SDM Vol. 2 WRMSR); IA32_S_CET only, with Quirks.IBT (TestIBTMSR*)",
}
