package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/patchtrace/patchtrace/scenario"
	"github.com/patchtrace/patchtrace/scenarios"
)

// defaultScenario is what commands run when given no scenario.
const defaultScenario = "text-poke-bp"

// builtinIDs lists the embedded scenarios.
func builtinIDs() []string {
	ents, err := fs.ReadDir(scenarios.FS, ".")
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range ents {
		if _, err := fs.Stat(scenarios.FS, e.Name()+"/scenario.toml"); e.IsDir() && err == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids
}

// loadScenario resolves arg: a built-in id, a directory holding
// scenario.toml, or a path to a scenario file.
func loadScenario(arg string) (*scenario.Spec, error) {
	if arg == "" {
		arg = defaultScenario
	}
	for _, id := range builtinIDs() {
		if id == arg {
			return scenario.Load(scenarios.FS, id)
		}
	}
	st, err := os.Stat(arg)
	if err != nil {
		return nil, fmt.Errorf("unknown scenario %q: not a built-in (%s) and not a file or directory", arg, strings.Join(builtinIDs(), ", "))
	}
	dir := arg
	if !st.IsDir() {
		dir = filepath.Dir(arg)
		if filepath.Base(arg) != "scenario.toml" {
			text, err := os.ReadFile(arg)
			if err != nil {
				return nil, err
			}
			spec, err := scenario.Parse(arg, text)
			if err != nil {
				return nil, err
			}
			if spec.ELF, err = os.ReadFile(filepath.Join(dir, spec.Slice)); err != nil {
				return nil, fmt.Errorf("%s: slice: %w", arg, err)
			}
			return spec, nil
		}
	}
	return scenario.Load(os.DirFS(dir), ".")
}

func cmdScenarios(env *cmdEnv, args []string) int {
	fs := newFlags(env, "scenarios")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, code, done := parseFlags(env, fs, args); done {
		return code
	}
	type row struct {
		ID        string `json:"id"`
		Seed      string `json:"seed_mail"`
		Expect    string `json:"expect"`
		Mechanism string `json:"mechanism"`
	}
	var rows []row
	for _, id := range builtinIDs() {
		s, err := scenario.Load(scenarios.FS, id)
		if err != nil {
			return errorf(env, "built-in scenario %s: %v", id, err)
		}
		rows = append(rows, row{s.ID, s.SeedMail, s.Expect.String(), s.Mechanism})
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return errorf(env, "%v", err)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEED\tEXPECT\tMECHANISM")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Seed, r.Expect, r.Mechanism)
	}
	tw.Flush()
	return exitOK
}
