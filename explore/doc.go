// Package explore searches a scenario's schedules for analyzer findings,
// minimises the failing decision log, and writes the minimal failing run
// as a trace.
//
// A run of the emulated machine is fully determined by its scenario and
// its decision log (emu.Decision: "step cpu c for n steps", "raise IRQ v on
// cpu c", "raise NMI on cpu c"). Exploration generates decision logs,
// runs each with no trace file and with the analyzers attached in process
// (record.Recorder feeding check.Judge, exactly as `patchtrace check`
// does: one analyzer implementation for files and live runs), and treats
// any finding as a violation. A run that does not finish is one too: the
// trap and progress analyzers always run, so an oops, panic or BUG, the
// instruction budget (unless the scenario is open-ended), a hang, and the
// emulator stopping on an unsupported instruction or an error are findings,
// minimised and written out like any other.
//
// # Fairness
//
// The strategies' schedules are adversarial: lopsided CPU weights, PCT
// priorities and deviations can starve a runnable CPU for as long as the
// run lasts, which no hardware does. A CPU that waits for a starved one
// (an IPI sender waiting for acks) then keeps the machine until the
// instruction budget without any livelock. So a schedule that has used
// the scenario's instruction budget (Options.MaxInsns when set) hands over
// to a fair tail: round robin over the runnable CPUs, 64 steps each, with
// the default schedules' clock (see below) and no injections, for as many
// instructions again; the scenario as explored has twice the budget (its
// max_insns line is rewritten and the comment on top says so). Only a run
// that does not finish under the fair tail either (it ends on the doubled
// budget, or hung) is a progress violation: a CPU spinning on a flag
// nobody will set, a lost IPI, an IRETQ that returns to itself. The tail's
// decisions are ordinary decisions of the run's log, so replay,
// minimisation and the written trace rerun them exactly; a violating
// schedule's description says from which decision the tail ran. Open-ended
// scenarios (contract.terminates = false) have no tail. check needs none:
// its seeded schedules step a uniformly random runnable CPU at every
// choice point, so a runnable CPU waits n choice points with probability
// ((c-1)/c)^n on c runnable CPUs.
//
// # The scenario as explored
//
// By default the scenario's injection plan ([[inject]] tables) is ignored:
// a finding must come from the schedule alone, from a random start, with
// no injection plan help (Options.KeepInject restores it). Param overrides
// (Options.Params) make small instances. Prepare rewrites the scenario text
// accordingly (a comment line on top says what changed), and that text is
// what a written trace carries, so the trace re-executes with no other
// option to remember.
//
// # Choice points
//
// The machine asks its decision source for the next decision whenever the
// previous one is used up: that call is a choice point. Between choice
// points one CPU runs a quantum of steps (a step is one instruction, one
// event delivery, or nothing for an idle CPU); injections are decisions of
// their own and take effect at the target CPU's next instruction boundary
// at which the hardware allows them (NMIs: not while blocked, not before
// the CPU's first STI; timer interrupts: IF=1 and not in an STI shadow).
// A CPU can therefore only be preempted, and only receive an interrupt,
// at the end of one of its quanta: the quantum is the granularity of the
// search.
//
// A CPU is runnable when it is not halted, or is halted with an NMI or
// an enabled interrupt to take (emu.Machine.Runnable). Sources only step
// runnable CPUs; when none is runnable and not every CPU has finished, the
// run ends as hung.
//
// # Strategies
//
// random (the default): schedule i is drawn from seed mix(Seed, i). Each
// schedule first draws its own shape from a menu (swarm testing, Groce et
// al. 2012): a quantum range 1..Q with Q in {1, 4, 16, 64, 256} (or
// Options.Quantum), NMI and timer rates each in {0, 1/4096, 1/1024, 1/256}
// expected injections per step, machine-wide (or Options.Rate), and a
// weight per CPU in {1, 2, 8, 32}. At each choice point it injects when a
// Poisson clock over scheduled steps says so (on a uniformly random CPU),
// otherwise steps a runnable CPU chosen by weight for a uniform quantum.
// Lopsided weights stall one CPU for long stretches, which is what opens
// a race window a few instructions wide.
//
// pct: PCT (Burckhardt et al., ASPLOS 2010) over CPUs, with change points
// counted in synchronisation events rather than instructions: service
// calls (text_poke, set_memory_*, IPIs, ...), markers, trap and interrupt
// deliveries, LOCK-prefixed and XCHG/CMPXCHG/XADD instructions, CPUID,
// MFENCE, STI, CLI, POPF and IRETQ. (Among instructions, a change point
// would almost never land in a window a few instructions wide; among
// synchronisation events it lands after a given text_poke with
// probability about 1/k.) A calibration run (the round-robin default
// schedule below, not counted) gives k, the number of such events in a
// run. Each schedule draws distinct priorities d..d+n-1 for the n CPUs,
// d-1 change points uniform in [1, k] events, and m injections (NMI or
// timer, random CPU) after uniform event counts in [0, k), m drawn from
// {0, 1, 2, 4} (or Options.Injections). Each choice point steps the
// highest-priority runnable CPU for Options.Quantum steps (default 1, so
// that a change point takes effect right after its event); once the
// event count reaches the i-th change point, the CPU that ran last drops
// to priority i, below every initial priority. Spinning is yielding
// (after CHESS's fairness rule): a CPU that executed PAUSE (cpu_relax) in
// its last quantum is passed over for the next 64 steps, or until every
// runnable CPU is being passed over, so a high-priority CPU spinning on a
// lock cannot starve its holder. A CPU that waits without spinning (a
// caller that loops until the patcher is done) can still starve the CPU it
// waits for: PCT assumes threads that terminate on their own. So after
// four times the calibration run's length in steps, a PCT schedule turns
// round robin (fair) for the rest of the run.
//
// The clock: pct and bounded schedules give each CPU a timer interrupt
// every Options.Tick steps of its own (default: the scenario's mean
// quantum / timer_rate; none when timer_rate is 0). It is part of the
// default schedule, not a deviation: the slices' schedulers rotate tasks
// on timer interrupts, and without a clock a CPU with two tasks runs one
// of them forever. For the same reason the random strategy draws a
// non-zero timer rate when the scenario's timer_rate is non-zero.
//
// bounded: systematic search with a deviation bound k (Options.Bound,
// default 1; Musuvathi and Qadeer's preemption bounding, PLDI 2007,
// extended to injections). The default schedule is round robin: at each
// choice point, step the first runnable CPU after the one stepped last
// (cyclically) for Options.Quantum steps (default 64), preceded by its
// clock tick when one is due. At choice point i,
// with def the default CPU, R the other runnable CPUs in increasing order,
// n the CPU count and K the enabled injection kinds (NMI, then timer), the
// alternatives are numbered
//
//	0 .. |R|-1                 run R[a] instead of def (a context switch;
//	                           round robin continues after R[a])
//	|R| + j*n + c              inject kind K[j] on cpu c, then run def
//
// so choice point i offers |R| + |K|*n alternatives. A schedule is a set of
// deviations (i, a) at increasing choice points; every other choice point
// takes the default. The search runs the default schedule, then, depth
// first, every schedule with one more deviation at a choice point after
// the last deviation (choice points are counted in the run that has the
// deviations so far), up to k deviations. Each schedule with at most k
// deviations is run exactly once, so when the search ends it has been
// exhausted: "exhausted: 18,432 schedules, no violation" means every
// interleaving and injection placement reachable from round-robin quanta
// with at most k deviations is clean. The bound says nothing about
// preemptions inside a quantum: a smaller quantum refines the search (and
// grows it).
//
// # Shards
//
// Options.Shard/Shards (--shard i/n) partition the schedules so that n
// processes cover them exactly once: random and pct run the schedule
// indexes congruent to i mod n (Budget counts over all shards); bounded
// deals the subtrees under the first deviations round robin (first
// deviation number j to shard j mod n; the default schedule to shard 0),
// and every shard runs the default schedule to enumerate them. Schedules
// are identified by ScheduleHash, FNV-1a of the encoded decision log; the
// union of the shards' hashes is the unsharded run's set, and the
// summaries' digests (the sum of the hashes) add up.
//
// Each shard writes DIR/scenario=<id>/shard=<i>/: findings.parquet
// (FindingsSchema, pinned by testdata/findings_schema.golden; one row per
// finding of each violating schedule and of each minimised run),
// summary.json, and per violation NN-analyzer-symbol.arrow (the minimised
// run as a trace) with NN-analyzer-symbol.json (its findings, as
// `patchtrace analyze --format json` writes them); NN-analyzer-symbol files
// an earlier run left there are removed (they would read as this run's
// results; `patchtrace explore` refuses such a directory without --force).
// DuckDB:
//
//	SELECT scenario, analyzer, symbol, min(decision_count)
//	FROM read_parquet('DIR/**/*.parquet', hive_partitioning = true)
//	WHERE minimized GROUP BY ALL;
//
// # Results do not depend on workers
//
// Schedules run in parallel (Options.Workers) but are processed in index
// order: the first violation is the lowest-indexed one whatever the
// number of workers (with one exception: a bounded search cut by Budget
// with more than one worker cuts at a timing-dependent place).
//
// # Minimisation
//
// Shrink re-runs candidate logs (strict replay through emu.LogSource, only
// the target's analyzer attached) and keeps a candidate when it still
// shows a finding of the same analyzer in the same symbol. It truncates
// the log after the decision whose events hold the finding and shortens
// that decision (the analyzers report while streaming, so a prefix of a
// run shows every finding its events show), runs ddmin over decisions,
// drops injections one by one and binary-searches each step count, until
// nothing changes or the run budget (Options.ShrinkRuns) is spent.
// Adjacent steps of one CPU are merged throughout: "step c a; step c b"
// and "step c a+b" are the same run.
package explore
