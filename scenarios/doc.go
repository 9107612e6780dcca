// Package scenarios holds patchtrace's built-in scenarios: small x86-64
// kernel slices, in assembly and C, that run a live text-patching protocol
// on the emulated machine, each with a scenario file saying how to run it
// and what verdict to expect.
//
// Layout:
//
//	base/            shared by every slice (docs/slice-abi.md)
//	  slice.lds      the linker script: the ABI's memory layout
//	  head.S         pt_start, where every CPU boots
//	  entry.S        .pt.vectors and the entry stubs: #BP (with the int3
//	                 call-emulation gap), NMI on IST2 with nested-NMI
//	                 handling, #UD/#GP/#PF/#DF (oops), timer, call-function
//	                 and reschedule IPIs; switch_to, ret_from_fork
//	  entry.h        PT_VECTOR, IDTENTRY/IRQENTRY, pt_regs offsets
//	  percpu.h       DEFINE_PER_CPU, this_cpu_read/write/add/inc/dec (%gs:)
//	  slice.h        types, barriers, pt_regs, native services, APIs
//	  native.S       the native service stubs (ud2 bodies)
//	  sched.c        boot (start_cpu) and the preemptive round-robin scheduler
//	  traps.c        C handlers; weak int3_hook/nmi_hook/timer_hook
//	  alternative.c  text_poke_bp() and sync_core_all()
//	  lib.S          memcpy, memset
//	lib/<name>/      shared code a scenario links with uses = ["<name>"]
//	<id>/            one scenario
//	  scenario.toml  the scenario file (package scenario parses it)
//	  *.c, *.S       its own code; *.fentry.c are built as ftrace sites
//	  <id>.elf       the built slice, checked in and embedded in FS
//
// build.sh rebuilds every <id>.elf deterministically with patchtrace build
// (internal/slicebuild), which rejects any instruction the emulator's
// decoder does not run; TestRebuild checks that the checked-in ELFs are
// exactly what the sources produce. After changing a slice source, run
// scenarios/build.sh and commit the ELFs with it.
package scenarios
