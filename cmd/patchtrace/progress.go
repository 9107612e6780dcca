package main

import (
	"flag"
	"time"

	"github.com/patchtrace/patchtrace/internal/progress"
)

// progressHelp is the help text's paragraph on progress, for the commands
// that show it.
const progressHelp = "Progress goes to stderr, never stdout: a bar with counts, elapsed time and ETA\n" +
	"on a terminal; a plain line every 5s otherwise (a pipe, a file, or CI set in the\n" +
	"environment); none with --quiet (-q).\n"

// progressEvery, when set, overrides the interval between progress draws
// (tests: a plain line every few seconds is too slow to wait for).
var progressEvery time.Duration

// quietFlag adds --quiet and its short form -q to a long-running command.
func quietFlag(fs *flag.FlagSet) *bool {
	q := fs.Bool("quiet", false, "no progress display on stderr")
	fs.BoolVar(q, "q", false, "same as --quiet")
	return q
}

// startProgress starts the progress display of a command on stderr (never
// stdout: piped output stays clean), or returns nil, which displays
// nothing, when quiet.
func startProgress(env *cmdEnv, quiet bool, c progress.Config) *progress.Meter {
	if quiet {
		return nil
	}
	if progressEvery > 0 {
		c.Every = progressEvery
	}
	return progress.Start(env.stderr, c)
}

// meterErr is errorf for a command showing progress: the terminal bar is
// cleared first, so the message is not written onto it.
func meterErr(env *cmdEnv, m *progress.Meter, format string, a ...any) int {
	m.Done()
	return errorf(env, format, a...)
}
