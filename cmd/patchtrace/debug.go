package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/format"
	"github.com/patchtrace/patchtrace/internal/gdbserver"
	"github.com/patchtrace/patchtrace/internal/progress"
	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

const debugAbout = "Serves the recorded run in TRACE to gdb over the remote serial protocol, read from\n" +
	"the trace alone (no re-execution, no scenario directory), forwards and backwards.\n" +
	"Each CPU is a gdb thread (thread N is cpuN-1; `info threads` shows its task, trap\n" +
	"depth and symbol+offset). Time is global: stepi, step, next, finish and continue\n" +
	"move forwards through the selected CPU's instructions while the other CPUs' state\n" +
	"advances with the trace, and reverse-stepi, reverse-step, reverse-continue and\n" +
	"reverse-finish move backwards. Software breakpoints at addresses and symbols\n" +
	"(break text_poke, break *lp_fn2, break file.c:LINE with the slice's line table)\n" +
	"stop before the instruction; watch ADDR (a store to it, through the text_poke\n" +
	"alias too) stops after the storing instruction forwards and before it backwards:\n" +
	"reverse-continue finds the store that put an int3 at a patch site. rwatch and\n" +
	"awatch need load events (format version 4; refused when the trace's rows contradict\n" +
	"its claim of them, monitor finding says why). Memory reads show memory as it was at\n" +
	"the position, text as patched. Registers: rax..r15, rsp and eflags from the\n" +
	"trace's register deltas (format version 4; an older trace, or one recorded with\n" +
	"--no-regs, shows them <unavailable>, never invented), rip as the CPU's next\n" +
	"instruction, cs and gs_base as the machine fixes them. Memory and registers are\n" +
	"read-only.\n" +
	"monitor seq N goes to just before event N, monitor finding K to finding K's first\n" +
	"event (the analyzers run over the trace when first asked; monitor finding lists\n" +
	"them), monitor events [N] lists the events around the position (events --around).\n" +
	"On start it writes the slice ELF the trace carries, the slice's sources (a trace\n" +
	"of a built-in scenario whose ELF is the embedded one: for list and source lines)\n" +
	"and a gdb script (attach, symbols, sources, a hook that refreshes gdb's registers\n" +
	"after monitor commands) into --dir (default: a temporary directory, removed on\n" +
	"exit; an ELF there that is not the trace's is never replaced) and prints the gdb\n" +
	"command line. Reading the trace through once first (the\n" +
	"snapshots that make any later seek cheap) shows progress on stderr.\n" + progressHelp +
	"It serves one gdb at a time, one after another, until interrupted (--once: until the\n" +
	"first session ends); a client that disconnects mid-session is dropped. The trace is\n" +
	"never written. See docs/debugging.md.\n" +
	"Exit status: 0 served, 2 error (the trace cannot be read, the address is in use)."

func cmdDebug(env *cmdEnv, args []string) int {
	fs := newFlags(env, "debug")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	dir := fs.String("dir", "", "write the slice ELF and the gdb script here (default: a temporary directory)")
	once := fs.Bool("once", false, "exit when the first gdb session ends")
	verbose := fs.Bool("v", false, "log protocol problems (malformed packets, dropped clients) on stderr")
	quiet := quietFlag(fs)
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) != 1 {
		return usageErr(env, fs, "debug: %s", oneFile(pos))
	}
	path := pos[0]
	r, err := format.Open(path)
	if err != nil {
		return errorf(env, "debug: %v", err)
	}
	defer r.Close()
	md := r.Meta()
	if r.Truncated() {
		fmt.Fprintf(env.stderr, "patchtrace: warning: debug: %v: serving the events before the cut\n", r.TruncatedError())
	}
	var incomplete string // set by Findings: why the analysis is incomplete
	cfg := gdbserver.Config{
		Reader: r,
		Findings: func() ([]gdbserver.Finding, error) {
			res, err := analyze.AnalyzeFile(path, analyze.All(), analyze.AllowTruncated())
			if err != nil {
				return nil, err
			}
			incomplete = res.Incomplete
			if res.Truncated && incomplete == "" {
				incomplete = "the trace is truncated: findings up to the cut"
			}
			var fs []gdbserver.Finding
			for _, f := range res.Findings {
				fs = append(fs, gdbserver.Finding{Seq: f.SeqFirst, Summary: fmt.Sprintf("%s %s: cpu%d %s at %s (seq %d..%d): %s",
					f.Severity, f.Analyzer, f.CPU, f.Context, f.Where, f.SeqFirst, f.SeqLast, f.Message)})
			}
			return fs, nil
		},
		FindingsNote: func() string { return incomplete },
	}
	if *verbose {
		cfg.Log = env.stderr
	}
	m := startProgress(env, *quiet, progress.Config{Label: "debug: reading " + filepath.Base(path), Unit: "batches", Total: int64(r.NumBatches())})
	cfg.Progress = func(batch, _ int) { m.Set(int64(batch)) }
	srv, err := gdbserver.New(cfg)
	if err != nil {
		return meterErr(env, m, "debug: %s: %v", path, err)
	}
	m.Done()
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return errorf(env, "debug: %v", err)
	}
	defer ln.Close()
	out := *dir
	if out == "" {
		if out, err = os.MkdirTemp("", "patchtrace-debug-"); err != nil {
			return errorf(env, "debug: %v", err)
		}
		defer os.RemoveAll(out)
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return errorf(env, "debug: %v", err)
	}
	name := fileName(md.Scenario)
	elf := filepath.Join(out, name+".elf")
	if old, err := os.ReadFile(elf); err == nil && !bytes.Equal(old, md.ELF) {
		// A slice of the user's (say, rebuilt since the trace was
		// recorded) is never replaced: it was, silently.
		return errorf(env, "debug: %s exists and is not the ELF the trace carries: give another --dir", elf)
	}
	if err := writeFileAtomic(elf, md.ELF); err != nil {
		return errorf(env, "debug: %v", err)
	}
	addr := ln.Addr().String()
	src, err := stageSources(md, filepath.Join(out, "src"))
	if err != nil {
		return errorf(env, "debug: %v", err)
	}
	if err := notNewerThan(src, elf); err != nil {
		return errorf(env, "debug: %v", err)
	}
	script := filepath.Join(out, "patchtrace.gdb")
	if err := writeFileAtomic(script, []byte(gdbScript(elf, src, addr))); err != nil {
		return errorf(env, "debug: %v", err)
	}
	regs := "registers from the trace's register deltas"
	switch {
	case md.Version < 4:
		regs = fmt.Sprintf("format version %d: no registers recorded (gdb shows them <unavailable>)", md.Version)
	case !md.Regs:
		regs = "recorded with --no-regs: no registers (gdb shows them <unavailable>)"
	}
	if !md.Loads {
		regs += "; no load events: rwatch and awatch cannot be set"
	}
	fmt.Fprintf(env.stdout, "patchtrace debug: %s: %s on %d CPUs (gdb threads 1..%d are cpu0..cpu%d), %d events; %s\n",
		path, md.Scenario, md.CPUs, md.CPUs, md.CPUs-1, r.NumEvents(), regs)
	fmt.Fprintf(env.stdout, "listening on %s; attach with:\n  gdb -x %s\nor:\n  gdb -ex 'target remote %s' %s\n", addr, script, addr, elf)
	if f, ok := env.stdout.(interface{ Sync() error }); ok {
		f.Sync()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return exitOK
			}
			return errorf(env, "debug: %v", err)
		}
		fmt.Fprintf(env.stderr, "patchtrace debug: gdb connected from %s\n", nc.RemoteAddr())
		serr := srv.Serve(nc)
		nc.Close()
		if serr != nil {
			fmt.Fprintf(env.stderr, "patchtrace debug: gdb session ended: %v\n", serr)
		} else {
			fmt.Fprintf(env.stderr, "patchtrace debug: gdb session ended\n")
		}
		if *once {
			return exitOK
		}
	}
}

// notNewerThan gives every file under dir the modification time of the
// file ref, so that gdb does not warn "Source file is more recent than
// executable" for sources staged after the ELF (gdb compares the two in
// whole seconds, so the warning came and went with the clock).
func notNewerThan(dir, ref string) error {
	if dir == "" {
		return nil
	}
	st, err := os.Stat(ref)
	if err != nil {
		return err
	}
	t := st.ModTime()
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, t, t)
	})
}

// gdbScript attaches gdb to the server with the slice's symbols, and makes
// gdb drop its cached registers and memory after every monitor command
// (monitor seq and finding move the position behind gdb's back).
func gdbScript(elf, src, addr string) string {
	dir := ""
	if src != "" {
		dir = "directory " + gdbQuote(src) + "\n"
	}
	return fmt.Sprintf(`# written by patchtrace debug
file %s
%sdefine hookpost-monitor
  maintenance flush register-cache
  maintenance flush dcache
end
target remote %s
`, gdbQuote(elf), dir, addr)
}

// fileName is the trace's scenario id as a file name: characters a
// scenario id may not hold are replaced by "_" ("slice" when none is
// left). The id comes from the trace, which may be hostile: a newline in
// it ended the gdb script's file line, and the next line ran as a gdb
// command (shell ...) when the user ran gdb -x.
func fileName(id string) string {
	name := strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '.' || r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return r
		}
		return '_'
	}, id)
	name = strings.TrimLeft(name[:min(len(name), 64)], ".")
	if name == "" {
		return "slice"
	}
	return name
}

// gdbQuote quotes a file name for gdb's file command.
func gdbQuote(s string) string {
	if !strings.ContainsAny(s, " \t\"'\\") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// stageSources writes the slice's sources under dir with the names its
// line table gives them (base/..., lib/NAME/..., ID/...), so that gdb's
// list and source lines work, when the trace is of a built-in scenario
// whose embedded ELF is the one the trace carries (the sources are then
// the ones it was built from). It returns dir, or "" when the sources are
// not known.
func stageSources(md *format.Meta, dir string) (string, error) {
	spec, err := scenario.Load(scenarios.FS, md.Scenario)
	if err != nil || !bytes.Equal(spec.ELF, md.ELF) || spec.Base != "" {
		return "", nil
	}
	copyDir := func(from, to string) error {
		ents, err := fs.ReadDir(scenarios.FS, from)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.IsDir() || !isSource(e.Name()) {
				continue
			}
			b, err := fs.ReadFile(scenarios.FS, from+"/"+e.Name())
			if err != nil {
				return err
			}
			if err := os.MkdirAll(to, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	if err := copyDir("base", filepath.Join(dir, "base")); err != nil {
		return "", err
	}
	for _, lib := range spec.Uses {
		if strings.Contains(lib, "/") {
			return "", nil // a library outside the built-in ones
		}
		if err := copyDir("lib/"+lib, filepath.Join(dir, "lib", lib)); err != nil {
			return "", err
		}
	}
	if err := copyDir(spec.ID, filepath.Join(dir, spec.ID)); err != nil {
		return "", err
	}
	for _, r := range spec.Replace {
		b, err := fs.ReadFile(scenarios.FS, spec.ID+"/"+r)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "base", strings.TrimPrefix(r, "base/")), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func isSource(name string) bool {
	switch filepath.Ext(name) {
	case ".c", ".S", ".h":
		return true
	}
	return false
}
