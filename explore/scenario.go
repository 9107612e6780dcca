package explore

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/patchtrace/patchtrace/scenario"
)

// Prepare returns spec as exploration runs it: params overridden, the
// injection plan dropped unless keepInject, max_insns replaced when
// maxInsns is non-zero. The returned spec's Text is the scenario file
// rewritten to say exactly that (with a comment line on top), so that a
// trace recorded from it is self-contained: re-executing the trace's
// scenario text with its decision log reproduces the run with no other
// option to remember. The rewrite is checked by parsing it back.
func Prepare(spec *scenario.Spec, params map[string]uint64, maxInsns uint64, keepInject bool) (*scenario.Spec, error) {
	dropInject := !keepInject && len(spec.Inject) > 0
	if len(params) == 0 && maxInsns == 0 && !dropInject {
		return spec, nil
	}
	text, notes, err := rewrite(spec.Text, params, maxInsns, dropInject)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", spec.ID, err)
	}
	if len(notes) > 0 {
		text = "# patchtrace explore: " + strings.Join(notes, "; ") + "\n" + text
	}
	out, err := scenario.Parse(spec.ID+"/scenario.toml", []byte(text))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: rewritten for exploration: %w", spec.ID, err)
	}
	out.ELF = spec.ELF
	// The rewrite must say what was asked, nothing else.
	want := maps.Clone(spec.Params)
	if want == nil && len(params) > 0 {
		want = map[string]uint64{}
	}
	maps.Copy(want, params)
	switch {
	case !maps.Equal(out.Params, want):
		return nil, fmt.Errorf("scenario %s: rewritten params are %v, want %v", spec.ID, out.Params, want)
	case dropInject && len(out.Inject) != 0:
		return nil, fmt.Errorf("scenario %s: could not drop the [[inject]] tables from the text", spec.ID)
	case maxInsns != 0 && out.MaxInsns != maxInsns:
		return nil, fmt.Errorf("scenario %s: could not set max_insns", spec.ID)
	}
	return out, nil
}

// rewrite edits TOML text line by line: the top-level max_insns key, the
// keys of [params], and whole [[inject]] tables. Lines inside multi-line
// strings are left alone.
func rewrite(text string, params map[string]uint64, maxInsns uint64, dropInject bool) (string, []string, error) {
	lines := strings.SplitAfter(text, "\n")
	var out []string
	var notes []string
	table := "" // current table header ("" before any)
	inStr := "" // the open multi-line string delimiter, if any
	pending := maps.Clone(params)
	sawParams, sawMax := false, false
	flushParams := func() {
		for _, k := range slices.Sorted(maps.Keys(pending)) {
			out = append(out, fmt.Sprintf("%s = %d\n", k, pending[k]))
			notes = append(notes, fmt.Sprintf("params.%s = %d (added)", k, pending[k]))
		}
		pending = nil
	}
	for _, ln := range lines {
		trimmed := strings.TrimSpace(ln)
		if inStr != "" {
			if strings.Count(ln, inStr)%2 == 1 {
				inStr = ""
			}
			if !(dropInject && table == "[[inject]]") {
				out = append(out, ln)
			}
			continue
		}
		if strings.HasPrefix(trimmed, "[") {
			if table == "[params]" {
				flushParams()
			}
			table = trimmed
			if i := strings.Index(table, "#"); i >= 0 {
				table = strings.TrimSpace(table[:i])
			}
			table = strings.Join(strings.Fields(table), "")
			if table == "[params]" {
				sawParams = true
			}
			if dropInject && table == "[[inject]]" {
				continue
			}
			out = append(out, ln)
			continue
		}
		for _, d := range []string{`"""`, `'''`} {
			if strings.Count(ln, d)%2 == 1 {
				inStr = d
			}
		}
		if dropInject && table == "[[inject]]" {
			continue
		}
		key, val, isKey := strings.Cut(trimmed, "=")
		key = strings.TrimSpace(key)
		if isKey && inStr == "" {
			switch {
			case table == "" && key == "max_insns" && maxInsns != 0:
				sawMax = true
				notes = append(notes, fmt.Sprintf("max_insns = %d (was %s)", maxInsns, valueOf(val)))
				ln = fmt.Sprintf("max_insns = %d\n", maxInsns)
			case table == "[params]":
				if v, ok := pending[key]; ok {
					notes = append(notes, fmt.Sprintf("params.%s = %d (was %s)", key, v, valueOf(val)))
					ln = fmt.Sprintf("%s = %d\n", key, v)
					delete(pending, key)
				}
			}
		}
		out = append(out, ln)
	}
	if table == "[params]" {
		if len(out) > 0 && !strings.HasSuffix(out[len(out)-1], "\n") {
			out[len(out)-1] += "\n"
		}
		flushParams()
	}
	if dropInject {
		notes = append(notes, "[[inject]] tables removed (exploration runs without the injection plan)")
	}
	if maxInsns != 0 && !sawMax {
		// Top-level keys come before any table: the first line will do.
		out = append([]string{fmt.Sprintf("max_insns = %d\n", maxInsns)}, out...)
		notes = append(notes, fmt.Sprintf("max_insns = %d (added)", maxInsns))
	}
	res := strings.Join(out, "")
	if len(pending) > 0 && !sawParams {
		if !strings.HasSuffix(res, "\n") {
			res += "\n"
		}
		var b strings.Builder
		b.WriteString("\n[params]\n")
		for _, k := range slices.Sorted(maps.Keys(pending)) {
			fmt.Fprintf(&b, "%s = %d\n", k, pending[k])
			notes = append(notes, fmt.Sprintf("params.%s = %d (added)", k, pending[k]))
		}
		res += b.String()
	}
	return res, notes, nil
}

func valueOf(v string) string {
	if i := strings.Index(v, "#"); i >= 0 {
		v = v[:i]
	}
	v = strings.TrimSpace(v)
	if _, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 0, 64); err != nil {
		return strconv.Quote(v)
	}
	return v
}
