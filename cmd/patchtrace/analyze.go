package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/patchtrace/patchtrace/format"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/patchtrace/patchtrace/analyze"
	"github.com/patchtrace/patchtrace/scenarios"
)

func cmdAnalyze(env *cmdEnv, args []string) int {
	fs := newFlags(env, "analyze")
	formatName := fs.String("format", "text", "output format: text, json, sarif or junit")
	only := fs.String("only", "", "comma-separated analyzer ids to run (default all: "+strings.Join(analyze.IDs(), ",")+")")
	out := fs.String("o", "", "write the report to this file instead of stdout (written whole or not at all)")
	force := fs.Bool("force", false, "replace an existing -o file")
	allowTrunc := fs.Bool("allow-truncated", false, "judge a truncated trace by the events it has (default: it is incomplete, exit status 2)")
	pos, code, done := parseFlags(env, fs, args)
	if done {
		return code
	}
	if len(pos) == 0 {
		return usageErr(env, fs, "analyze: no trace FILE given")
	}
	var ids []string
	if *only != "" {
		ids = strings.Split(*only, ",")
	}
	if _, err := analyze.Select(ids); err != nil {
		return usageErr(env, fs, "analyze: --only: %v", err)
	}
	var render func(io.Writer, []*analyze.Result) error
	switch *formatName {
	case "text":
		render = analyze.WriteText
	case "json":
		render = analyze.WriteJSON
	case "sarif":
		loc := analyze.SourceLocator(scenarios.FS)
		render = func(w io.Writer, rs []*analyze.Result) error { return analyze.WriteSARIF(w, rs, version, loc) }
	case "junit":
		render = analyze.WriteJUnit
	default:
		return usageErr(env, fs, "analyze: unknown --format %q (text, json, sarif, junit)", *formatName)
	}
	if *out != "" && !*force {
		if _, err := os.Lstat(*out); err == nil {
			return errorf(env, "analyze: %s exists (use --force to replace it)", *out)
		}
	}
	if *out != "" {
		if err := refuseInput(*out, pos...); err != nil {
			return errorf(env, "analyze: -o: %v", err)
		}
	}
	var opts []analyze.Option
	if *allowTrunc {
		opts = append(opts, analyze.AllowTruncated())
	}
	var results []*analyze.Result
	findings, incomplete := 0, 0
	for _, path := range pos {
		as, _ := analyze.Select(ids) // fresh analyzer state per trace
		res, err := analyze.AnalyzeFile(path, as, opts...)
		if err != nil {
			return errorf(env, "analyze: %v", err)
		}
		for _, w := range res.Warnings {
			if *out != "" || *formatName != "text" {
				fmt.Fprintf(env.stderr, "patchtrace: warning: %s: %s\n", path, w)
			}
		}
		if res.Incomplete != "" {
			incomplete++
			fmt.Fprintf(env.stderr, "patchtrace: analyze: %s: incomplete: %s\n", path, res.Incomplete)
		}
		findings += len(res.Findings)
		results = append(results, res)
	}
	var buf bytes.Buffer
	if err := render(&buf, results); err != nil {
		return errorf(env, "analyze: %v", err)
	}
	if *out == "" {
		env.stdout.Write(buf.Bytes())
	} else if err := writeFileAtomic(*out, buf.Bytes()); err != nil {
		return errorf(env, "analyze: %v", err)
	}
	if incomplete > 0 {
		return exitError
	}
	if findings > 0 {
		return exitFinding
	}
	return exitOK
}

// refuseInput says when out names one of the files a command reads
// (os.SameFile: the same path, a hard link, another spelling of it):
// --force replaces an existing output, never the input it was made from
// (analyze -o run.arrow --force run.arrow replaced the trace with its
// report).
func refuseInput(out string, inputs ...string) error {
	ost, err := os.Stat(out)
	if err != nil {
		return nil
	}
	for _, in := range inputs {
		if ist, err := os.Stat(in); err == nil && os.SameFile(ost, ist) {
			return fmt.Errorf("%s is the input %s: refusing to replace it", out, in)
		}
	}
	return nil
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it into place, so path is never left half-written.
// Only a regular file is replaced: a symlink, device node, FIFO or
// directory at path is refused (format.ErrNotRegular), as for traces.
func writeFileAtomic(path string, data []byte) error {
	if err := format.CheckOutput(path, true); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.partial")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	err = errors.Join(werr, tmp.Chmod(0o644), tmp.Sync(), tmp.Close())
	if err == nil {
		err = format.CheckOutput(path, true)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
