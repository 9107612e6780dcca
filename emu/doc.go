// Package emu is the emulated machine: N x86-64 CPUs executing a real
// gcc-built kernel slice instruction by instruction, on sparse paged
// memory, under a seeded scheduler whose every choice is logged, so that a
// run is reproduced exactly from its scenario, image and decision log.
//
// # What is modelled
//
//   - 64-bit mode at CPL 0 with flat segments (gdt.go; SDM Vol. 3 §3.2.4,
//     §5.2.1); the general-purpose registers, RFLAGS (flags computed
//     eagerly and checked against the host CPU, flags.go) and GS base.
//   - The integer instruction set the slices use, decoded once per address
//     and bytes (the machine's CPUs share decodes, each keeps its own
//     decode cache) with golang.org/x/arch/x86/x86asm (decode*.go) and executed
//     by family (exec_*.go). Each behaviour cites its SDM Vol. 2 entry and
//     is differential-tested against the host CPU (internal/hostexec,
//     hostdiff_isa_test.go, the goldens in testdata/insn).
//   - Memory as 4 KiB frames with per-page R/W/X permissions (mem.go,
//     perm.go); a missing right is a #PF. Kernel text is changed only
//     through a writable alias, as the kernel's text_poke does.
//   - Exceptions, interrupts and NMIs delivered through the slice's IDT
//     with real 64-bit frames pushed as memory stores, IST stacks, NMI
//     blocking until the next IRETQ, and the one-instruction STI shadow
//     (vector.go, step.go; SDM Vol. 3 §6). Whether an NMI may arrive in
//     the STI shadow is a quirk (Quirks.NMIInSTIShadow).
//   - Cross-modifying code (SDM Vol. 3 §8.1.3): a CPU may keep executing
//     its decode of bytes another CPU changed until it serializes; the
//     fetch models (coherent, stale, torn) choose how (fetch.go, Quirks).
//   - Native kernel services: slice functions whose bodies the machine
//     provides when a CPU reaches them (text_poke, set_memory_*,
//     module_alloc, IPIs, panic, BUG, markers; service.go, service_id.go).
//
// # What is not
//
// No page tables (permissions are per page, changed by the set_memory_*
// services), no user mode or privilege changes, no devices beyond IPIs and
// the timer, reschedule and call-function vectors, no caches or timing:
// time is the scheduler's decisions. A valid instruction outside the
// implemented set stops the run with StopUnsupported naming its bytes and
// address; it is never guessed at.
//
// # Using it
//
// In order:
//
//  1. LoadImage parses a slice ELF (sections, symbols, the IDT and per-CPU
//     layout of docs/slice-abi.md) into an Image. Malformed input is a
//     *FormatError, never a panic.
//  2. New builds a Machine from the Image and a Config (CPUs, quirks,
//     tasks, parameters, injection rules, budgets, Sink). ConfigFor makes
//     the Config from a scenario (package scenario) and Options; Setup and
//     SetupImage do all of it and return the seeded RandomSource too.
//  3. Machine.Run executes decisions from a DecisionSource (RandomSource
//     for a seeded run, LogSource to replay a decision log) until the run
//     stops.
//  4. The Result says why it stopped (StopReason: done, budget, oops,
//     panic, bug, hung, unsupported, error), with instruction and event
//     counts, per-CPU statistics and the decisions taken; feeding those
//     back through a LogSource reproduces the run event for event.
//
// # The Sink contract
//
// A Sink receives every Event (EventKinds: an instruction, a memory store,
// a load from a declared per-CPU slot, a trap and its IRETQ, a permission
// change, a serialization, a task switch, a service call, a marker, an
// unhandled fault, an injected interrupt, a halt) in sequence order, on
// the goroutine that called Run. Event must not retain its argument: the machine reuses
// it. A nil Sink costs nothing; the machine then builds no events. Package
// record is the Sink that writes traces.
//
// # Go errors and guest faults
//
// What the guest does wrong is architecture, not a Go error: a #PF, #UD or
// #GP is delivered to the slice's handler like on hardware, and one with no
// handler (or a fault while delivering one) is an oops that ends the run
// with StopOops. A Go error means the machine cannot go on: a broken
// image or configuration is returned by LoadImage, New and Setup; during
// Run, an unsupported instruction or an emulator failure stops the run
// with StopUnsupported or StopError and Result.Err holds an *Error
// (CPU, RIP, symbol, bytes) wrapping the cause (*UnsupportedError for the
// former).
//
// # Files
//
//   - machine.go: Machine, Config, Quirks, StopReason, Result, Run.
//   - spec.go: Options, ConfigFor, Setup, SetupImage (scenario to machine).
//   - image.go: LoadImage, Image, the boot mappings; the slice ABI itself
//     (ELF checks and sections, the symbol table, the address-space layout,
//     the instruction-start walker) is internal/slice, shared with replay.
//   - sched.go, decisions.go: decisions, decision sources, the seeded
//     scheduler, the decision-log encoding.
//   - step.go: one CPU's steps: instruction, interrupt delivery, HLT.
//   - cpu.go, inspect.go: CPU state and its copies (Regs).
//   - fetch.go, inst.go: the per-CPU decode cache and fetch models.
//   - isa.go: the instruction set as one table indexed by x86asm.Op
//     (operand form, interpreter op, flag class, SDM page), from which
//     docs/isa.md is generated. checkcode.go: CheckCode, the decoder's
//     verdict for tools that vet a slice (patchtrace build).
//   - decode.go, decode_invalid.go, decode_system.go: x86asm's decode to
//     the interpreter's form, one decoder per operand form; what is
//     invalid (#UD) and what is unsupported.
//   - exec_dispatch.go, exec_*.go: the interpreter, one file per
//     instruction family; flags.go: the arithmetic flags.
//   - mem.go, perm.go: memory, frames, permissions, the text-poke alias.
//   - gdt.go, vector.go: segments, vectors and gates.
//   - service.go, service_id.go: the native kernel services.
//   - event.go: Event, EventKind and the Sink interface.
package emu

//go:generate go test -run TestGenerated -update
