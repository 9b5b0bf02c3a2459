package scraper

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// metricKind identifies the series the parser keeps; everything else is
// skipped after reading its name.
type metricKind uint8

const (
	kindOther metricKind = iota
	kindNodeCPU
	kindNodeMemory
	kindContainerCPU
	kindContainerMemory
	kindScrapeError
)

func classify(name []byte) metricKind {
	// A switch on string(name) compiles to comparisons without allocating.
	switch string(name) {
	case "container_cpu_usage_seconds_total":
		return kindContainerCPU
	case "container_memory_working_set_bytes":
		return kindContainerMemory
	case "node_cpu_usage_seconds_total":
		return kindNodeCPU
	case "node_memory_working_set_bytes":
		return kindNodeMemory
	case "scrape_error", "resource_scrape_error":
		return kindScrapeError
	}
	return kindOther
}

const (
	hasCPU uint8 = 1 << iota
	hasMemory
)

// containerRecord joins the CPU and memory samples of one container. The
// byte slices point into the body (or, for escaped label values, into a
// private copy) and are only valid until the parser is reset.
type containerRecord struct {
	namespace, pod, name []byte
	cpu                  float64 // cumulative core-seconds
	cpuTS                int64   // unix nanoseconds
	memory               float64 // working set bytes
	has                  uint8
	seq                  uint32 // order of appearance, so that duplicates fold deterministically
}

// parser extracts the node and container samples from a kubelet
// /metrics/resource body. It is reused across scrapes (through a pool) so
// that a steady-state parse does not allocate.
type parser struct {
	recs []containerRecord
	// cursor[k] is where the next sample of container kind k is expected in
	// recs: the kubelet lists every family in the same container order, so
	// the memory family usually lines up with the CPU family record by record.
	cursor [2]int

	nodeCPU     float64
	nodeCPUTS   int64
	nodeMemory  float64
	nodeHas     uint8
	scrapeError bool
}

func (p *parser) reset() {
	clear(p.recs) // drop references to the previous body
	p.recs = p.recs[:0]
	*p = parser{recs: p.recs}
}

// parse reads a whole body. now (unix nanoseconds) stamps samples that carry
// no timestamp. A malformed line of a series we need, a truncated last line or
// a line that does not start like a sample makes the whole body invalid.
func (p *parser) parse(body []byte, now int64) error {
	p.reset()
	for lineNo := 1; len(body) > 0; lineNo++ {
		nl := bytes.IndexByte(body, '\n')
		if nl < 0 {
			return fmt.Errorf("line %d: truncated (no final newline)", lineNo)
		}
		line := body[:nl]
		body = body[nl+1:]
		if err := p.parseLine(line, now); err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
	}
	p.join()
	return nil
}

func (p *parser) parseLine(line []byte, now int64) error {
	line = skipSpace(line)
	if len(line) == 0 || line[0] == '#' {
		return nil
	}
	if line[0] == '{' {
		// A quoted (UTF-8) metric name of the newer text format; never one of ours.
		return nil
	}
	n := nameEnd(line, true)
	if n == 0 {
		return errors.New("invalid metric name")
	}
	kind := classify(line[:n])
	rest := line[n:]
	if kind == kindOther {
		// Not ours: only check that the name ends like a sample name does.
		if len(rest) == 0 || (rest[0] != '{' && rest[0] != ' ' && rest[0] != '\t') {
			return errors.New("invalid sample line")
		}
		return nil
	}

	var ns, pod, ctr []byte
	if len(rest) > 0 && rest[0] == '{' {
		var err error
		if rest, err = parseLabels(rest[1:], &ns, &pod, &ctr); err != nil {
			return err
		}
	}
	rest = skipSpace(rest)
	end := tokenEnd(rest)
	if end == 0 {
		return errors.New("missing value")
	}
	value, err := strconv.ParseFloat(string(rest[:end]), 64)
	if err != nil {
		return fmt.Errorf("invalid value %q", rest[:end])
	}
	rest = skipSpace(rest[end:])
	ts := now
	if len(rest) > 0 {
		end = tokenEnd(rest)
		ms, ok := parseTimestamp(rest[:end])
		if !ok {
			return fmt.Errorf("invalid timestamp %q", rest[:end])
		}
		ts = ms * 1e6
		if rest = skipSpace(rest[end:]); len(rest) > 0 {
			return errors.New("unexpected text after timestamp")
		}
	}

	if kind == kindContainerCPU || kind == kindContainerMemory {
		if len(ns) == 0 || len(pod) == 0 || len(ctr) == 0 {
			return errors.New("container sample without namespace, pod or container label")
		}
	}
	// NaN, infinities and negative usage carry no information: treat the
	// sample as absent rather than failing the node.
	if math.IsNaN(value) || math.IsInf(value, 0) || value < 0 {
		return nil
	}
	switch kind {
	case kindNodeCPU:
		p.nodeCPU, p.nodeCPUTS = value, ts
		p.nodeHas |= hasCPU
	case kindNodeMemory:
		p.nodeMemory = value
		p.nodeHas |= hasMemory
	case kindScrapeError:
		p.scrapeError = p.scrapeError || value != 0
	case kindContainerCPU:
		r := p.record(0, ns, pod, ctr)
		r.cpu, r.cpuTS = value, ts
		r.has |= hasCPU
	case kindContainerMemory:
		r := p.record(1, ns, pod, ctr)
		r.memory = value
		r.has |= hasMemory
	}
	return nil
}

// record returns the record for a container, trying the expected position
// first. On a miss it appends a new record; join merges any duplicates this
// creates, so correctness does not depend on the kubelet's ordering.
func (p *parser) record(k int, ns, pod, ctr []byte) *containerRecord {
	c := p.cursor[k]
	for i := c; i < c+2 && i < len(p.recs); i++ {
		if r := &p.recs[i]; bytes.Equal(r.name, ctr) && bytes.Equal(r.pod, pod) && bytes.Equal(r.namespace, ns) {
			p.cursor[k] = i + 1
			return r
		}
	}
	if c == len(p.recs) {
		p.cursor[k]++
	}
	p.recs = append(p.recs, containerRecord{namespace: ns, pod: pod, name: ctr, seq: uint32(len(p.recs))})
	return &p.recs[len(p.recs)-1]
}

func compareRecords(a, b containerRecord) int {
	if c := compareKeys(a, b); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

func compareKeys(a, b containerRecord) int {
	if c := bytes.Compare(a.namespace, b.namespace); c != 0 {
		return c
	}
	if c := bytes.Compare(a.pod, b.pod); c != 0 {
		return c
	}
	return bytes.Compare(a.name, b.name)
}

// join sorts the records by namespace, pod and container and folds
// duplicates (a later sample of the same kind wins).
func (p *parser) join() {
	if !slices.IsSortedFunc(p.recs, compareRecords) {
		slices.SortFunc(p.recs, compareRecords)
	}
	out := p.recs[:0]
	for _, r := range p.recs {
		if n := len(out); n > 0 && compareKeys(out[n-1], r) == 0 {
			last := &out[n-1]
			if r.has&hasCPU != 0 {
				last.cpu, last.cpuTS = r.cpu, r.cpuTS
			}
			if r.has&hasMemory != 0 {
				last.memory = r.memory
			}
			last.has |= r.has
			continue
		}
		out = append(out, r)
	}
	clear(p.recs[len(out):])
	p.recs = out
}

// parseLabels parses `name="value",...}` (the opening brace already consumed)
// and returns the text after the closing brace. Only the namespace, pod and
// container labels are kept; escaped values are unescaped into a new slice.
func parseLabels(s []byte, ns, pod, ctr *[]byte) ([]byte, error) {
	for {
		s = skipSpace(s)
		if len(s) == 0 {
			return nil, errors.New("unterminated label set")
		}
		if s[0] == '}' {
			return s[1:], nil
		}
		n := nameEnd(s, false)
		if n == 0 {
			return nil, errors.New("invalid label name")
		}
		name := s[:n]
		s = skipSpace(s[n:])
		if len(s) == 0 || s[0] != '=' {
			return nil, errors.New("expected '=' after label name")
		}
		s = skipSpace(s[1:])
		if len(s) == 0 || s[0] != '"' {
			return nil, errors.New("expected quoted label value")
		}
		value, tail, err := parseLabelValue(s[1:])
		if err != nil {
			return nil, err
		}
		switch string(name) {
		case "namespace":
			*ns = value
		case "pod":
			*pod = value
		case "container":
			*ctr = value
		}
		s = skipSpace(tail)
		if len(s) > 0 && s[0] == ',' {
			s = s[1:]
		} else if len(s) == 0 || s[0] != '}' {
			return nil, errors.New("expected ',' or '}' after label value")
		}
	}
}

// parseLabelValue reads up to the closing quote. Without escapes the value
// aliases s; with escapes (\\, \", \n) it is unescaped into a copy.
func parseLabelValue(s []byte) (value, rest []byte, err error) {
	// Fast path: no backslash before the first quote (always the case for
	// Kubernetes names).
	q := bytes.IndexByte(s, '"')
	if q < 0 {
		return nil, nil, errors.New("unterminated label value")
	}
	if bytes.IndexByte(s[:q], '\\') < 0 {
		return s[:q], s[q+1:], nil
	}
	out := make([]byte, 0, q)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return out, s[i+1:], nil
		case '\\':
			if i++; i == len(s) {
				return nil, nil, errors.New("unterminated label value")
			}
			switch s[i] {
			case '\\', '"':
				out = append(out, s[i])
			case 'n':
				out = append(out, '\n')
			default:
				return nil, nil, fmt.Errorf("invalid escape sequence \\%c in label value", s[i])
			}
		default:
			out = append(out, c)
		}
	}
	return nil, nil, errors.New("unterminated label value")
}

// parseTimestamp parses a millisecond timestamp. It accepts only values that
// fit in int64 nanoseconds and are after the epoch.
func parseTimestamp(b []byte) (int64, bool) {
	const maxMillis = math.MaxInt64 / int64(time.Millisecond)
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v > 0 && v <= maxMillis
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

func tokenEnd(b []byte) int {
	for i, c := range b {
		if c == ' ' || c == '\t' || c == '\r' {
			return i
		}
	}
	return len(b)
}

// Character classes of metric and label names, as a table because the name
// scan runs for every line.
const (
	classLabelStart uint8 = 1 << iota // [a-zA-Z_]
	classLabel                        // [a-zA-Z_0-9]
	classNameStart                    // [a-zA-Z_:]
	className                         // [a-zA-Z_0-9:]
)

var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		digit := c >= '0' && c <= '9'
		if letter {
			t[c] |= classLabelStart | classNameStart
		}
		if letter || digit {
			t[c] |= classLabel | className
		}
		if c == ':' {
			t[c] |= classNameStart | className
		}
	}
	return t
}()

// nameEnd returns the length of the name at the start of b: a metric name
// (with colons) or a label name.
func nameEnd(b []byte, metric bool) int {
	start, rest := classLabelStart, classLabel
	if metric {
		start, rest = classNameStart, className
	}
	if len(b) == 0 || charClass[b[0]]&start == 0 {
		return 0
	}
	n := 1
	for n < len(b) && charClass[b[n]]&rest != 0 {
		n++
	}
	return n
}
