package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"strings"
)

//go:embed report.js
var viewerJS string

//go:embed report.css
var viewerCSS string

// fieldsJSON encodes a row's columns (keys sorted).
func fieldsJSON(f map[string]string) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// WriteHTML writes the page: one file, the viewer and the data inline.
func WriteHTML(w io.Writer, d *Data) error {
	js, err := json.Marshal(d) // escapes <, > and & : safe inside <script>
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>%s</title>\n", html.EscapeString(d.Title))
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width\">\n<style>\n")
	b.WriteString(viewerCSS)
	b.WriteString("</style></head>\n<body>\n<noscript>This report draws its timeline with JavaScript.</noscript>\n")
	b.WriteString("<script type=\"application/json\" id=\"pt-data\">")
	b.Write(js)
	b.WriteString("</script>\n<script>\n")
	b.WriteString(strings.ReplaceAll(viewerJS, "</script", "<\\/script"))
	b.WriteString("</script>\n</body></html>\n")
	_, err = w.Write(b.Bytes())
	return err
}

// Index is one run listed by WriteIndex.
type Index struct {
	Scenario string
	Seed     uint64
	Report   string // relative link
	Expect   string
	Got      string
	Outcome  string
	OK       bool
	Findings int
}

// WriteIndex writes a page linking the reports of a check run.
func WriteIndex(w io.Writer, title string, runs []Index) error {
	var b bytes.Buffer
	e := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>\n<style>\n%s</style></head>\n<body class=\"index\">\n<h1>%s</h1>\n", e(title), viewerCSS, e(title))
	bad := 0
	for _, r := range runs {
		if !r.OK {
			bad++
		}
	}
	fmt.Fprintf(&b, "<p>%d run(s): %d as expected, %d not.</p>\n", len(runs), len(runs)-bad, bad)
	b.WriteString("<table class=\"runs\"><thead><tr><th>scenario</th><th>seed</th><th>expected</th><th>got</th><th>outcome</th><th>findings</th><th></th></tr></thead><tbody>\n")
	for _, r := range runs {
		cls, mark := "ok", "ok"
		if !r.OK {
			cls, mark = "bad", "MISMATCH"
		}
		link := e(r.Scenario)
		if r.Report != "" {
			link = fmt.Sprintf("<a href=\"%s\">%s</a>", e(r.Report), e(r.Scenario))
		}
		fmt.Fprintf(&b, "<tr class=\"%s\"><td>%s</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td></tr>\n",
			cls, link, r.Seed, e(r.Expect), e(r.Got), e(r.Outcome), r.Findings, mark)
	}
	b.WriteString("</tbody></table>\n</body></html>\n")
	_, err := w.Write(b.Bytes())
	return err
}
