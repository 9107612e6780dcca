package analyze

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// Locator maps a finding's symbol ("" when it has none) in a scenario to a
// source file and line (for SARIF); ok=false when unknown. A finding whose
// Source (file:line from the slice's line table) is known is placed there
// instead; the Locator then only says whether the scenario is a built-in
// one (see sourceRegion).
type Locator func(scenario, symbol string) (file string, line int, ok bool)

// whereText is the finding's place for people: "symbol+0xoff (file:line)",
// or symbol+offset alone when the line is unknown.
func (f *Finding) whereText() string {
	if f.Source == "" {
		return f.Where
	}
	return f.Where + " (" + f.Source + ")"
}

// sourceRegion maps a finding's Source ("ID/patch.c:42", staged names) to
// a SARIF artifact and line. For a built-in scenario (loc places its
// scenario file under scenarios/DIR/) the staged names become the
// repository's: scenarios/DIR/patch.c, scenarios/base/..., scenarios/lib/...;
// for any other scenario a file of its own is named relative to its
// directory (patch.c) and the rest as staged (base/traps.c: the author's
// replace = [...] copy, or the built-in base's file of that name).
func sourceRegion(scenario, source string, loc Locator) (string, int, bool) {
	i := strings.LastIndexByte(source, ':')
	if i <= 0 {
		return "", 0, false
	}
	line, err := strconv.Atoi(source[i+1:])
	if err != nil || line <= 0 {
		return "", 0, false
	}
	file := source[:i]
	own, isOwn := strings.CutPrefix(file, scenario+"/")
	if loc != nil {
		if toml, _, ok := loc(scenario, ""); ok && strings.HasPrefix(toml, "scenarios/") {
			if isOwn {
				return path.Dir(toml) + "/" + own, line, true
			}
			return "scenarios/" + file, line, true
		}
	}
	if isOwn {
		return own, line, true
	}
	return file, line, true
}

// WriteText prints results for a person.
func WriteText(w io.Writer, results []*Result) error {
	for _, res := range results {
		for _, warn := range res.Warnings {
			fmt.Fprintf(w, "%s: warning: %s\n", res.File, warn)
		}
		fmt.Fprintf(w, "%s: %s: run outcome: %s\n", res.File, res.Scenario, OutcomeText(res))
		if res.Incomplete != "" {
			fmt.Fprintf(w, "%s: %s: INCOMPLETE: %s\n", res.File, res.Scenario, res.Incomplete)
		}
		if len(res.Findings) == 0 {
			if res.Incomplete == "" {
				fmt.Fprintf(w, "%s: %s: clean%s (%d events; analyzers: %s)\n", res.File, res.Scenario, truncNote(res), res.Events, strings.Join(res.Analyzers, ", "))
			}
			continue
		}
		fmt.Fprintf(w, "%s: %s: %d finding(s)%s (%d events)\n", res.File, res.Scenario, len(res.Findings), truncNote(res), res.Events)
		for _, f := range res.Findings {
			times := ""
			if f.Count > 1 {
				times = fmt.Sprintf(" [%d times%s; first shown]", f.Count, f.alsoText())
			}
			fmt.Fprintf(w, "\n%s %s: cpu%d %s at %s (seq %d..%d)%s\n  %s\n", f.Severity, f.Analyzer, f.CPU, f.Context, f.whereText(), f.SeqFirst, f.SeqLast, times, f.Message)
			if len(f.Story) > 0 {
				fmt.Fprintln(w, "  what happened:")
				for _, l := range f.Story {
					fmt.Fprintf(w, "    %s\n", l)
				}
			}
			fmt.Fprintf(w, "  evidence: seq %s\n", joinSeqs(f.Evidence))
		}
		fmt.Fprintln(w)
	}
	return nil
}

// OutcomeText says how a result's run ended, for people.
func OutcomeText(res *Result) string {
	switch {
	case res.Truncated:
		return "unknown (the trace is truncated)"
	case res.Outcome == "":
		return "not recorded"
	case res.OutcomeDetail == "":
		return res.Outcome
	}
	return res.Outcome + " (" + res.OutcomeDetail + ")"
}

func truncNote(res *Result) string {
	if res.Truncated {
		return " up to the cut of a TRUNCATED trace"
	}
	return ""
}

func joinSeqs(s []uint64) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}

// WriteJSON writes the results as a JSON array.
func WriteJSON(w io.Writer, results []*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}

// SARIF 2.1.0 (OASIS), the subset code-scanning UIs read.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Results     []sarifResult     `json:"results"`
	Invocations []sarifInvocation `json:"invocations"`
	Properties  map[string]any    `json:"properties,omitempty"`
}

// sarifTrace is how one trace's run ended, in the run's properties.
type sarifTrace struct {
	File       string `json:"file"`
	Scenario   string `json:"scenario"`
	Outcome    string `json:"outcome"`
	Detail     string `json:"outcomeDetail,omitempty"`
	Truncated  bool   `json:"truncated"`
	Verdict    string `json:"verdict"`
	Incomplete string `json:"incomplete,omitempty"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level   string       `json:"level"`
	Message sarifMessage `json:"message"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string             `json:"id"`
	Name                 string             `json:"name"`
	ShortDescription     sarifMessage       `json:"shortDescription"`
	FullDescription      sarifMessage       `json:"fullDescription"`
	DefaultConfiguration sarifConfiguration `json:"defaultConfiguration"`
}

type sarifConfiguration struct {
	Level string `json:"level"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string            `json:"ruleId"`
	RuleIndex  int               `json:"ruleIndex"`
	Level      string            `json:"level"`
	Message    sarifMessage      `json:"message"`
	Locations  []sarifLocation   `json:"locations"`
	CodeFlows  []sarifCodeFlow   `json:"codeFlows,omitempty"`
	Properties map[string]any    `json:"properties"`
	Finger     map[string]string `json:"partialFingerprints"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
	Message          *sarifMessage  `json:"message,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

type sarifCodeFlow struct {
	ThreadFlows []sarifThreadFlow `json:"threadFlows"`
}

type sarifThreadFlow struct {
	Locations []sarifThreadFlowLocation `json:"locations"`
}

type sarifThreadFlowLocation struct {
	Location sarifLocation `json:"location"`
}

// WriteSARIF writes one SARIF 2.1.0 run with a rule per analyzer and a
// result per finding, located in the slice source when loc knows the symbol.
func WriteSARIF(w io.Writer, results []*Result, toolVersion string, loc Locator) error {
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "patchtrace", Version: toolVersion,
		InformationURI: "https://github.com/patchtrace/patchtrace"}}, Results: []sarifResult{}}
	index := map[string]int{}
	for i, a := range All() {
		index[a.ID()] = i
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: a.ID(), Name: ruleName(a.ID()), ShortDescription: sarifMessage{a.Doc()}, FullDescription: sarifMessage{a.Doc()},
			DefaultConfiguration: sarifConfiguration{Level: "error"},
		})
	}
	inv := sarifInvocation{ExecutionSuccessful: true}
	var traces []sarifTrace
	for _, res := range results {
		traces = append(traces, sarifTrace{File: res.File, Scenario: res.Scenario, Outcome: res.Outcome, Detail: res.OutcomeDetail,
			Truncated: res.Truncated, Verdict: res.Verdict, Incomplete: res.Incomplete})
		for _, warn := range res.Warnings {
			inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, sarifNotification{Level: "warning", Message: sarifMessage{res.File + ": " + warn}})
		}
		if res.Incomplete != "" {
			// The analysis could not judge the whole run: not a pass.
			inv.ExecutionSuccessful = false
			inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, sarifNotification{Level: "error",
				Message: sarifMessage{res.File + ": incomplete: " + res.Incomplete + "; run outcome: " + OutcomeText(res)}})
		}
		for _, f := range res.Findings {
			l := sarifLocation{LogicalLocations: []sarifLogical{{Name: f.Symbol, FullyQualifiedName: f.Where, Kind: "function"}}}
			if file, line, ok := sourceRegion(res.Scenario, f.Source, loc); ok {
				l.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: file}, Region: &sarifRegion{StartLine: line}}
			} else if loc != nil {
				if file, line, ok := loc(res.Scenario, f.Symbol); ok {
					l.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: file}, Region: &sarifRegion{StartLine: line}}
				}
			}
			if l.PhysicalLocation == nil {
				// Nothing in a source knows it: the trace, from its start
				// (the message and properties give the events). Every
				// result has a region: code-scanning UIs need one.
				l.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: res.File}, Region: &sarifRegion{StartLine: 1}}
			}
			r := sarifResult{
				RuleID: f.Analyzer, RuleIndex: index[f.Analyzer], Level: sarifLevel(f.Severity),
				Message:   sarifMessage{fmt.Sprintf("%s (cpu%d, %s, seq %d..%d in %s)", f.Message, f.CPU, f.Context, f.SeqFirst, f.SeqLast, res.File)},
				Locations: []sarifLocation{l},
				Properties: map[string]any{"cpu": f.CPU, "task": f.Task, "seqFirst": f.SeqFirst, "seqLast": f.SeqLast,
					"evidence": f.Evidence, "trace": res.File, "scenario": res.Scenario, "count": f.Count,
					"outcome": res.Outcome, "truncated": res.Truncated, "contexts": f.Contexts},
				Finger: map[string]string{"patchtrace/v1": res.Scenario + "|" + f.Analyzer + "|" + f.Where},
			}
			if f.HasFaultAddr {
				r.Properties["faultAddr"] = f.FaultAddr
			}
			if len(f.Story) > 0 {
				var tf sarifThreadFlow
				for _, s := range f.Story {
					m := sarifMessage{s}
					tf.Locations = append(tf.Locations, sarifThreadFlowLocation{Location: sarifLocation{Message: &m}})
				}
				r.CodeFlows = []sarifCodeFlow{{ThreadFlows: []sarifThreadFlow{tf}}}
			}
			run.Results = append(run.Results, r)
		}
	}
	run.Invocations = []sarifInvocation{inv}
	run.Properties = map[string]any{"patchtraceTraces": traces}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}

func ruleName(id string) string {
	var b strings.Builder
	up := true
	for _, r := range id {
		if r == '-' {
			up = true
			continue
		}
		if up && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		up = false
		b.WriteRune(r)
	}
	return b.String()
}

func sarifLevel(s Severity) string {
	if s == SevWarning {
		return "warning"
	}
	return "error"
}

// junitTime formats seconds as JUnit's time attribute.
func junitTime(sec float64) string { return fmt.Sprintf("%.6f", sec) }

// JUnit XML: one testsuite per trace, one testcase per analyzer; every
// testsuite and testcase has a time (seconds).
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Tests   int          `xml:"tests,attr"`
	Fails   int          `xml:"failures,attr"`
	Errors  int          `xml:"errors,attr"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name   string      `xml:"name,attr"`
	Time   string      `xml:"time,attr"`
	Tests  int         `xml:"tests,attr"`
	Fails  int         `xml:"failures,attr"`
	Errors int         `xml:"errors,attr"`
	Cases  []junitCase `xml:"testcase"`
	Out    string      `xml:"system-out,omitempty"`
}

type junitCase struct {
	Class   string        `xml:"classname,attr"`
	Name    string        `xml:"name,attr"`
	Time    string        `xml:"time,attr"`
	Failure *junitFailure `xml:"failure,omitempty"`
	Error   *junitFailure `xml:"error,omitempty"`
	Out     string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes JUnit XML: per trace a testcase "run" for how the run
// ended (an error when the result is incomplete: the run stopped on an
// emulator limit or error, or the trace is truncated), then one per
// analyzer (a failure when it reported).
func WriteJUnit(w io.Writer, results []*Result) error {
	var all junitSuites
	for _, res := range results {
		s := junitSuite{Name: "patchtrace " + res.Scenario + " (" + res.File + ")", Out: strings.Join(res.Warnings, "\n"), Time: junitTime(res.Seconds)}
		// "run" is the whole pass (reading and replaying the trace);
		// each analyzer's case its own share of it.
		rc := junitCase{Class: "patchtrace." + res.Scenario, Name: "run", Out: "run outcome: " + OutcomeText(res), Time: junitTime(res.Seconds)}
		if res.Truncated {
			rc.Out += "; the trace is TRUNCATED"
		}
		if res.Incomplete != "" {
			rc.Error = &junitFailure{Message: "incomplete: " + res.Incomplete, Type: "incomplete",
				Text: res.Incomplete + "\nrun outcome: " + OutcomeText(res) + "\n"}
			s.Errors++
		}
		s.Tests++
		s.Cases = append(s.Cases, rc)
		for _, id := range res.Analyzers {
			c := junitCase{Class: "patchtrace." + res.Scenario, Name: id, Time: junitTime(res.AnalyzerSeconds[id])}
			var text strings.Builder
			n := 0
			for _, f := range res.Findings {
				if f.Analyzer != id {
					continue
				}
				n++
				fmt.Fprintf(&text, "cpu%d %s at %s (seq %d..%d, %d times%s): %s\n", f.CPU, f.Context, f.whereText(), f.SeqFirst, f.SeqLast, f.Count, f.alsoText(), f.Message)
				for _, l := range f.Story {
					fmt.Fprintf(&text, "    %s\n", l)
				}
			}
			if n > 0 {
				c.Failure = &junitFailure{Message: fmt.Sprintf("%d finding(s)", n), Type: id, Text: text.String()}
				s.Fails++
			}
			s.Tests++
			s.Cases = append(s.Cases, c)
		}
		all.Tests += s.Tests
		all.Fails += s.Fails
		all.Errors += s.Errors
		all.Suites = append(all.Suites, s)
	}
	io.WriteString(w, xml.Header)
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
