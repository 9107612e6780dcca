//go:build linux

#include "go_asm.h"
#include "textflag.h"

// State.R[i] is at 8*i (RSP, i=4, is skipped); State.RFLAGS at State_RFLAGS.

// func trampoline(code uintptr, st *State)
//
// ABI0 with a frame, so the assembler saves and restores BP around the body.
// Never async-preempted: the runtime does not preempt assembly functions, nor
// code it has no function table for (the snippet). Stack while the snippet
// runs, top down:
//
//	args       code, st
//	ret PC     into Run
//	saved BP   (inserted by the assembler)
//	savedR14   g
//	savedR15
//	target     code, at 0(SP)
//	ret PC     into the trampoline, pushed by CALL; the snippet's RET pops it
TEXT ·trampoline(SB), NOSPLIT, $24-16
	MOVQ	R14, savedR14-8(SP)
	MOVQ	R15, savedR15-16(SP)
	MOVQ	code+0(FP), AX
	MOVQ	AX, target-24(SP)
	MOVQ	st+8(FP), DI

	// RFLAGS to load: the host's, less CF PF AF ZF SF OF DF TF AC, plus the
	// state's CF PF AF ZF SF OF DF. IF, ID and the rest stay as they are (a
	// CPL-3 POPFQ cannot change IF or IOPL anyway).
	PUSHFQ
	POPQ	AX
	ANDQ	$~const_rflagsCleared, AX
	MOVQ	State_RFLAGS(DI), BX
	ANDQ	$const_rflagsLoaded, BX
	ORQ	BX, AX
	PUSHQ	AX

	// MOVs leave the flags alone. DI addresses the state, so it goes last.
	MOVQ	0(DI), AX
	MOVQ	8(DI), CX
	MOVQ	16(DI), DX
	MOVQ	24(DI), BX
	MOVQ	40(DI), BP
	MOVQ	48(DI), SI
	MOVQ	64(DI), R8
	MOVQ	72(DI), R9
	MOVQ	80(DI), R10
	MOVQ	88(DI), R11
	MOVQ	96(DI), R12
	MOVQ	104(DI), R13
	MOVQ	112(DI), R14
	MOVQ	120(DI), R15
	MOVQ	56(DI), DI
	POPFQ

	// Every register holds snippet state, so call through memory: target,
	// the bottom of the frame now that the pushes are popped.
	CALL	(SP)

	// PUSHFQ first, then free DI to address the state again. The assembler
	// rebases FP references by the push depth, and the snippet leaves RSP as
	// it found it, so st+8(FP) is still the argument.
	PUSHFQ
	PUSHQ	DI
	MOVQ	st+8(FP), DI
	MOVQ	AX, 0(DI)
	MOVQ	CX, 8(DI)
	MOVQ	DX, 16(DI)
	MOVQ	BX, 24(DI)
	MOVQ	BP, 40(DI)
	MOVQ	SI, 48(DI)
	MOVQ	R8, 64(DI)
	MOVQ	R9, 72(DI)
	MOVQ	R10, 80(DI)
	MOVQ	R11, 88(DI)
	MOVQ	R12, 96(DI)
	MOVQ	R13, 104(DI)
	MOVQ	R14, 112(DI)
	MOVQ	R15, 120(DI)
	POPQ	AX
	MOVQ	AX, 56(DI)
	POPQ	AX
	MOVQ	AX, State_RFLAGS(DI)

	// Back to what Go code expects: DF clear, g in R14, R15 as it was, X15
	// zero (the ABI0 call site re-zeroes X15 and reloads R14 from TLS too;
	// this does not rely on it). The epilogue restores BP.
	CLD
	PXOR	X15, X15
	MOVQ	savedR14-8(SP), R14
	MOVQ	savedR15-16(SP), R15
	RET
