package format

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
)

// Symbol is one entry of the slice's symbol table.
type Symbol struct {
	Name    string `json:"name"`
	Addr    uint64 `json:"addr"`
	Size    uint64 `json:"size"`
	Section string `json:"section"`
}

// Drop records events the recorder lost: Count events after sequence
// number AfterSeq.
type Drop struct {
	AfterSeq uint64 `json:"after_seq"`
	Count    uint64 `json:"count"`
}

// BatchInfo describes one record batch: the sequence range it covers.
type BatchInfo struct {
	FirstSeq, LastSeq uint64
	Rows              int
}

// Meta is a trace's schema-level metadata. The writer takes the fields
// known when a run starts; [Final] carries those known only at its end.
type Meta struct {
	Version      int // the file's format version (set by the reader; the writer writes FormatVersion)
	Scenario     string
	ScenarioText string
	ELF          []byte
	CPUs         int
	Quirks       map[string]string
	Seed         uint64
	Symbols      []Symbol
	ToolVersion  string

	// OpNames is the op dictionary: OpNames[Row.Op] is the mnemonic.
	// PercpuVars is the percpu_var dictionary. Both are stored as Arrow
	// dictionaries, not metadata; the reader fills them from the first batch.
	OpNames    []string
	PercpuVars []string

	// Final values, read from the footer. A truncated file has Status
	// StatusWriting and no Final values.
	// Budget is the run's effective budget (nil: not recorded, as in files
	// older than version 3).
	Budget *Budget
	// Loads and Regs say what optional content the trace records
	// ([KeyRecorded]): a load row for every data read, and register
	// deltas. Both are false in files before version 4. A writer rejects
	// load rows and register deltas its Meta does not declare.
	Loads, Regs bool

	Status string
	Events uint64
	Final
	Batches []BatchInfo

	// Checksums of a complete version 3 file (see KeyChecksums): the
	// header's, then one per record batch.
	checksums []uint32
}

// Budget is a run's instruction and decision budget as recorded under
// [KeyBudget]; 0 is unbounded.
type Budget struct {
	MaxInsns     uint64 `json:"max_insns"`
	MaxDecisions uint64 `json:"max_decisions"`
}

// Final is what is known only when a run ends; pass it to Writer.SetFinal.
type Final struct {
	Dropped         []Drop
	Decisions       []byte // opaque to format; encoding named by DecisionsFormat
	DecisionsFormat string
	DecisionCount   int
	// Outcome is why the run ended, one of [Outcomes] ("" in a file that
	// does not record it: version 1 and 2 files and truncated ones).
	// OutcomeDetail is the stop message.
	Outcome       string
	OutcomeDetail string
}

// headerValues returns the metadata values (in MetaKeys order) known at
// the start; late keys get their placeholder.
func (m *Meta) headerValues() ([]string, error) {
	quirks, err := json.Marshal(nonNilMap(m.Quirks))
	if err != nil {
		return nil, fmt.Errorf("format: encode quirks: %w", err)
	}
	syms := slices.Clone(m.Symbols)
	if syms == nil {
		syms = []Symbol{}
	}
	slices.SortStableFunc(syms, func(a, b Symbol) int {
		if a.Addr != b.Addr {
			if a.Addr < b.Addr {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	symJSON, err := json.Marshal(syms)
	if err != nil {
		return nil, fmt.Errorf("format: encode symbols: %w", err)
	}
	vals := make([]string, len(MetaKeys))
	for i, k := range MetaKeys {
		switch k.Key {
		case KeyFormatVersion:
			vals[i] = strconv.Itoa(FormatVersion)
		case KeyScenario:
			vals[i] = m.Scenario
		case KeyScenarioText:
			vals[i] = m.ScenarioText
		case KeyELF:
			vals[i] = base64.StdEncoding.EncodeToString(m.ELF)
		case KeyCPUs:
			vals[i] = strconv.Itoa(m.CPUs)
		case KeyQuirks:
			vals[i] = string(quirks)
		case KeySeed:
			vals[i] = strconv.FormatUint(m.Seed, 10)
		case KeySymbols:
			vals[i] = string(symJSON)
		case KeyToolVersion:
			vals[i] = m.ToolVersion
		case KeyStatus:
			vals[i] = StatusWriting
		case KeyRecorded:
			vals[i] = recordedValue(m.Loads, m.Regs)
		case KeyBudget:
			if m.Budget != nil {
				b, err := json.Marshal(m.Budget)
				if err != nil {
					return nil, fmt.Errorf("format: encode budget: %w", err)
				}
				vals[i] = string(b)
			}
		default:
			if !k.Late {
				return nil, fmt.Errorf("format: metadata key %s has no encoder", k.Key)
			}
		}
	}
	return vals, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// metaChecksum is the CRC-32C of the metadata (every key and value but
// KeyMetaChecksum's, in order, each as a u32 length and its bytes).
func metaChecksum(keys, vals []string) uint32 {
	var crc uint32
	var n [4]byte
	add := func(s string) {
		binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
		crc = crc32.Update(crc, castagnoli, n[:])
		crc = crc32.Update(crc, castagnoli, []byte(s))
	}
	for i, k := range keys {
		if k == KeyMetaChecksum {
			continue
		}
		add(k)
		add(vals[i])
	}
	return crc
}

// finalValues fills the late keys of vals (KeyMetaChecksum last, over the
// others).
func finalValues(keys, vals []string, f *Final, events uint64, batches []BatchInfo, sums []uint32) error {
	dropped := f.Dropped
	if dropped == nil {
		dropped = []Drop{}
	}
	dj, err := json.Marshal(dropped)
	if err != nil {
		return fmt.Errorf("format: encode dropped: %w", err)
	}
	var idx strings.Builder
	idx.WriteByte('[')
	for i, b := range batches {
		if i > 0 {
			idx.WriteByte(',')
		}
		fmt.Fprintf(&idx, "[%d,%d,%d]", b.FirstSeq, b.LastSeq, b.Rows)
	}
	idx.WriteByte(']')
	for i, k := range MetaKeys {
		switch k.Key {
		case KeyStatus:
			vals[i] = StatusComplete
		case KeyEvents:
			vals[i] = strconv.FormatUint(events, 10)
		case KeyDropped:
			vals[i] = string(dj)
		case KeyDecisions:
			vals[i] = base64.StdEncoding.EncodeToString(f.Decisions)
		case KeyDecisionsFormat:
			vals[i] = f.DecisionsFormat
		case KeyDecisionCount:
			vals[i] = strconv.Itoa(f.DecisionCount)
		case KeyBatchIndex:
			vals[i] = idx.String()
		case KeyOutcome:
			if f.Outcome != "" && !ValidOutcome(f.Outcome) {
				return fmt.Errorf("format: unknown outcome %q", f.Outcome)
			}
			vals[i] = f.Outcome
		case KeyOutcomeDetail:
			vals[i] = f.OutcomeDetail
		case KeyChecksums:
			b := []byte{'['}
			for j, c := range sums {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendUint(b, uint64(c), 10)
			}
			vals[i] = string(append(b, ']'))
		}
	}
	for i, k := range keys {
		if k == KeyMetaChecksum {
			vals[i] = strconv.FormatUint(uint64(metaChecksum(keys, vals)), 10)
		}
	}
	return nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func metaKeyNames() []string {
	ks := make([]string, len(MetaKeys))
	for i, k := range MetaKeys {
		ks[i] = k.Key
	}
	return ks
}

// versionOf returns the format version recorded in md. ok is false when
// md has no version key (the file is not a trace).
func versionOf(md arrow.Metadata) (v int, ok bool, err error) {
	i := md.FindKey(KeyFormatVersion)
	if i < 0 {
		return 0, false, nil
	}
	v, err = strconv.Atoi(md.Values()[i])
	if err != nil || v < 1 {
		return 0, true, fmt.Errorf("bad %s %q", KeyFormatVersion, md.Values()[i])
	}
	return v, true, nil
}

// decodeMeta parses trace metadata. final says whether the late keys must
// hold final values (footer) or may be placeholders (header).
func decodeMeta(md arrow.Metadata) (*Meta, error) {
	get := func(k string) (string, bool) {
		i := md.FindKey(k)
		if i < 0 {
			return "", false
		}
		return md.Values()[i], true
	}
	m := &Meta{}
	v, _, err := versionOf(md)
	if err != nil {
		return nil, err
	}
	m.Version = v
	for _, k := range MetaKeys {
		if _, ok := get(k.Key); !ok && v >= k.Since {
			return nil, fmt.Errorf("metadata key %s missing", k.Key)
		}
	}
	// The footer metadata's own checksum first, so that damage anywhere
	// in it is reported as such rather than as a bad value.
	if sum, _ := get(KeyMetaChecksum); v >= 3 && sum != "" {
		want, err := strconv.ParseUint(sum, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: bad value %q: %w", KeyMetaChecksum, sum, ErrCorrupt)
		}
		if got := metaChecksum(md.Keys(), md.Values()); uint32(want) != got {
			return nil, fmt.Errorf("footer metadata checksum %08x, computed %08x: %w", want, got, ErrCorrupt)
		}
	} else if st, _ := get(KeyStatus); v >= 3 && st != StatusWriting {
		return nil, fmt.Errorf("footer metadata without %s: %w", KeyMetaChecksum, ErrCorrupt)
	}
	m.Scenario, _ = get(KeyScenario)
	if err := checkScenarioID(m.Scenario); err != nil {
		return nil, err
	}
	m.ScenarioText, _ = get(KeyScenarioText)
	m.ToolVersion, _ = get(KeyToolVersion)
	s, _ := get(KeyELF)
	if m.ELF, err = base64.StdEncoding.DecodeString(s); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", KeyELF, err)
	}
	s, _ = get(KeyCPUs)
	if m.CPUs, err = strconv.Atoi(s); err != nil || m.CPUs < 0 {
		return nil, fmt.Errorf("metadata %s: bad value %q", KeyCPUs, s)
	}
	s, _ = get(KeySeed)
	if m.Seed, err = strconv.ParseUint(s, 10, 64); err != nil {
		return nil, fmt.Errorf("metadata %s: bad value %q", KeySeed, s)
	}
	s, _ = get(KeyQuirks)
	if err := json.Unmarshal([]byte(s), &m.Quirks); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", KeyQuirks, err)
	}
	s, _ = get(KeySymbols)
	if err := json.Unmarshal([]byte(s), &m.Symbols); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", KeySymbols, err)
	}
	if s, _ = get(KeyBudget); s != "" {
		m.Budget = new(Budget)
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(m.Budget); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", KeyBudget, err)
		}
	}
	if s, ok := get(KeyRecorded); ok {
		if m.Loads, m.Regs, err = parseRecorded(s); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", KeyRecorded, err)
		}
	}
	m.Status, _ = get(KeyStatus)
	switch m.Status {
	case StatusWriting:
		return m, nil
	case StatusComplete:
	default:
		return nil, fmt.Errorf("metadata %s: unknown status %q", KeyStatus, m.Status)
	}
	s, _ = get(KeyEvents)
	if m.Events, err = strconv.ParseUint(s, 10, 64); err != nil {
		return nil, fmt.Errorf("metadata %s: bad value %q", KeyEvents, s)
	}
	s, _ = get(KeyDropped)
	if err := json.Unmarshal([]byte(s), &m.Dropped); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", KeyDropped, err)
	}
	s, _ = get(KeyDecisions)
	if m.Decisions, err = base64.StdEncoding.DecodeString(s); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", KeyDecisions, err)
	}
	m.DecisionsFormat, _ = get(KeyDecisionsFormat)
	s, _ = get(KeyDecisionCount)
	if m.DecisionCount, err = strconv.Atoi(s); err != nil || m.DecisionCount < 0 {
		return nil, fmt.Errorf("metadata %s: bad value %q", KeyDecisionCount, s)
	}
	s, _ = get(KeyBatchIndex)
	var idx [][3]uint64
	if err := json.Unmarshal([]byte(s), &idx); err != nil {
		return nil, fmt.Errorf("metadata %s: %w", KeyBatchIndex, err)
	}
	m.Batches = make([]BatchInfo, len(idx))
	for i, e := range idx {
		if e[2] > 1<<31 {
			return nil, fmt.Errorf("metadata %s: batch %d has %d rows", KeyBatchIndex, i, e[2])
		}
		m.Batches[i] = BatchInfo{FirstSeq: e[0], LastSeq: e[1], Rows: int(e[2])}
	}
	// Absent before version 3: the outcome is not recorded.
	m.Outcome, _ = get(KeyOutcome)
	m.OutcomeDetail, _ = get(KeyOutcomeDetail)
	if m.Outcome != "" && !ValidOutcome(m.Outcome) {
		return nil, fmt.Errorf("metadata %s: unknown outcome %q", KeyOutcome, m.Outcome)
	}
	if v >= 3 {
		s, _ = get(KeyChecksums)
		if err := json.Unmarshal([]byte(s), &m.checksums); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", KeyChecksums, err)
		}
		if len(m.checksums) != len(m.Batches)+1 {
			return nil, fmt.Errorf("metadata %s: %d checksums for %d batches", KeyChecksums, len(m.checksums), len(m.Batches))
		}
	}
	return m, nil
}

// recordedValue is the [KeyRecorded] value for what a trace records.
func recordedValue(loads, regs bool) string {
	var parts []string
	if loads {
		parts = append(parts, "loads")
	}
	if regs {
		parts = append(parts, "regs")
	}
	return strings.Join(parts, ",")
}

// parseRecorded parses a [KeyRecorded] value.
func parseRecorded(s string) (loads, regs bool, err error) {
	if s == "" {
		return false, false, nil
	}
	for _, p := range strings.Split(s, ",") {
		switch {
		case p == "loads" && !loads && !regs:
			loads = true
		case p == "regs" && !regs:
			regs = true
		default:
			return false, false, fmt.Errorf("bad value %q: want a list of loads and regs, in that order", s)
		}
	}
	return loads, regs, nil
}

// scenarioID is what a scenario id may look like (scenario.IDPattern, at
// most scenarioIDMax bytes: the scenario package's rule, which the tests
// hold equal): an id names files, and commands print it raw.
var scenarioID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

const scenarioIDMax = 64

// checkScenarioID rejects a scenario id the scenario package would not
// accept (a trace could otherwise carry terminal escapes, newlines or a
// path into every report that names its scenario). An empty id (no
// scenario recorded) is let through.
func checkScenarioID(id string) error {
	if id == "" || (len(id) <= scenarioIDMax && scenarioID.MatchString(id)) {
		return nil
	}
	return fmt.Errorf("metadata %s: bad value %s: a scenario id is at most %d letters, digits, '.', '_' and '-', not starting with '.', '_' or '-'",
		KeyScenario, strconv.QuoteToASCII(truncID(id)), scenarioIDMax)
}

// truncID shortens a hostile id for an error message.
func truncID(id string) string {
	if len(id) > 2*scenarioIDMax {
		return id[:2*scenarioIDMax] + "..."
	}
	return id
}
