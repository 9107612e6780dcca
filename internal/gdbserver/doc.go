// Package gdbserver serves a recorded run to gdb over the remote serial
// protocol (the gdb manual's "Remote Protocol" appendix), read from the
// trace alone: `patchtrace debug` is its command line.
//
// The run is a replay.Cursor: a position in the trace with memory, page
// permissions, per-CPU context and registers reconstructed there. Each CPU
// is a gdb thread (thread id = cpu+1). Time is global: a position is
// "after event seq", the same for every CPU, and a CPU's pc is the rip of
// its next instruction, service or trap event after it.
//
//   - Stepping a CPU (s, vCont;s) moves to just before its next instruction
//     after the one at its pc; interrupts delivered in between are taken,
//     as a real single step takes them. A native service (text_poke and the
//     others emu runs natively) is one instruction at its stub's address.
//   - Reverse stepping (bs) moves to just before the CPU's last instruction
//     at or before the position; n reverse steps then n steps return to the
//     same state.
//   - Continue (c, vCont;c) and reverse continue (bc) scan the trace's
//     events (whole batches, kept decoded) for a breakpoint (Z0, Z1: an
//     instruction at the address, stopping before it), a write watchpoint
//     (Z2: a store overlapping the range, through the text_poke alias too),
//     or, in traces with load events, a read or access watchpoint (Z3, Z4).
//     A watchpoint stops after the accessing instruction forwards and just
//     before it backwards, which is what gdb expects of continuable x86
//     watchpoints in either direction. The ends of the trace are reported
//     with the replaylog stop reason ("No more reverse-execution history").
//   - Registers ('g', 'p') follow the target description the server sends
//     (qXfer:features:read target.xml): gdb's x86-64 core feature and the
//     segment bases. Values the trace does not carry are sent as 'x's, which
//     gdb shows as <unavailable>; nothing is invented.
//   - Memory ('m') is the memory at the position, text as patched. Writes
//     (M, X, G, P) are refused: the run is recorded.
//   - monitor (qRcmd) commands: seq N, finding K, events [N], help.
//
// The server reads the trace only. It never panics on what a client sends:
// a packet with a bad checksum is answered '-' and dropped, an unknown one
// gets the empty reply, a malformed one an error, and a client that goes
// away ends its session and nothing else. Serve runs one session; the
// position survives it, the breakpoints do not.
//
// rr (github.com/rr-debugger/rr, src/GdbServer.cc) is the model for the
// reverse-execution side of the protocol: ReverseStep+/ReverseContinue+ in
// qSupported, bs/bc, swbreak/watch/replaylog stop reasons, and resetting
// the thread gdb queries after a reverse continue.
package gdbserver
