package emu

// Vector is an interrupt/exception vector number, in the order of SDM Vol. 3
// §6.3.1, Table 6-1 (gVisor ring0/x86.go style).
type Vector uint8

const (
	VecDE  Vector = 0  // #DE divide error
	VecDB  Vector = 1  // #DB debug
	VecNMI Vector = 2  // NMI
	VecBP  Vector = 3  // #BP breakpoint (INT3)
	VecOF  Vector = 4  // #OF overflow
	VecBR  Vector = 5  // #BR bound range
	VecUD  Vector = 6  // #UD invalid opcode
	VecNM  Vector = 7  // #NM device not available
	VecDF  Vector = 8  // #DF double fault
	VecTS  Vector = 10 // #TS invalid TSS
	VecNP  Vector = 11 // #NP segment not present
	VecSS  Vector = 12 // #SS stack fault
	VecGP  Vector = 13 // #GP general protection
	VecPF  Vector = 14 // #PF page fault
	VecMF  Vector = 16 // #MF x87 error
	VecAC  Vector = 17 // #AC alignment check
	VecMC  Vector = 18 // #MC machine check
	VecCP  Vector = 21 // #CP control protection (CET; only IBT's ENDBRANCH is modelled)

	// Software-chosen vectors, numbered as Linux numbers them
	// (arch/x86/include/asm/irq_vectors.h).
	VecTimer        Vector = 0xec // LOCAL_TIMER_VECTOR
	VecCallFunction Vector = 0xfb // CALL_FUNCTION_VECTOR (sync_core IPIs)
	VecReschedule   Vector = 0xfd // RESCHEDULE_VECTOR
)

// hasErrorCode reports whether delivering v pushes an error code
// (SDM Vol. 3 Table 6-1, "Error Code" column).
func (v Vector) hasErrorCode() bool {
	switch v {
	case VecDF, VecTS, VecNP, VecSS, VecGP, VecPF, VecAC, VecCP:
		return true
	}
	return false
}

// Name is the mnemonic used in traces and messages ("#BP", "NMI", "vec 0xec").
func (v Vector) Name() string {
	switch v {
	case VecDE:
		return "#DE"
	case VecDB:
		return "#DB"
	case VecNMI:
		return "NMI"
	case VecBP:
		return "#BP"
	case VecOF:
		return "#OF"
	case VecBR:
		return "#BR"
	case VecUD:
		return "#UD"
	case VecNM:
		return "#NM"
	case VecDF:
		return "#DF"
	case VecTS:
		return "#TS"
	case VecNP:
		return "#NP"
	case VecSS:
		return "#SS"
	case VecGP:
		return "#GP"
	case VecPF:
		return "#PF"
	case VecMF:
		return "#MF"
	case VecAC:
		return "#AC"
	case VecMC:
		return "#MC"
	case VecTimer:
		return "timer"
	case VecCallFunction:
		return "ipi-call-function"
	case VecReschedule:
		return "ipi-reschedule"
	}
	const hex = "0123456789abcdef"
	return "vec 0x" + string(hex[v>>4]) + string(hex[v&15])
}

// gateName is Name for messages about a vector's gate: #CP, which the
// trace format's vector enum does not declare (adding it would change the
// pinned schema of every trace), is spelled out.
func (v Vector) gateName() string {
	if v == VecCP {
		return "#CP (vector 21, control protection)"
	}
	return v.Name()
}

// DR6, the debug status register (SDM Vol. 3 §17.2.3, Figure 17-3).
const (
	dr6Init uint64 = 0xffff0ff0 // its value after reset: reserved bits read as 1
	dr6BS   uint64 = 1 << 14    // BS: the #DB was a single-step trap (TF)

	dr7Init    uint64 = 0x400        // DR7 after reset (SDM Vol. 3 §17.2.4, Table 10-1)
	dr7Enables uint64 = 0xff | 1<<13 // L0-L3, G0-G3 and GD: what would arm a breakpoint
)
