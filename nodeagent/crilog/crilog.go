// Package crilog reads the container log files CRI runtimes write
// ("<RFC3339Nano time> <stream> <P|F> <content>" per line), for the kubelet
// API's log endpoint and for termination messages taken from the log.
package crilog

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"
)

// Entry is one line of a CRI log file: "<RFC3339Nano time> <stream> <P|F> <content>".
type Entry struct {
	Time    time.Time
	Stream  string // stdout or stderr
	Partial bool   // the line goes on in the next entry
	Content []byte
}

// Parse decodes one line (its newline optional).
func Parse(line []byte) (Entry, error) {
	var e Entry
	line = bytes.TrimSuffix(line, []byte{'\n'})
	fields := bytes.SplitN(line, []byte{' '}, 4)
	if len(fields) < 3 {
		return e, fmt.Errorf("not a CRI log line: %q", line)
	}
	t, err := time.Parse(time.RFC3339Nano, string(fields[0]))
	if err != nil {
		return e, fmt.Errorf("CRI log time %q: %w", fields[0], err)
	}
	e.Time, e.Stream = t, string(fields[1])
	switch string(fields[2]) {
	case "P":
		e.Partial = true
	case "F":
	default:
		// Runtimes before the tag field existed wrote the content right after the stream.
		e.Content = bytes.Join(fields[2:], []byte{' '})
		return e, nil
	}
	if len(fields) == 4 {
		e.Content = fields[3]
	}
	return e, nil
}

// TailOffset is where the last n lines of f begin, found by reading
// backwards so a large log is not read whole.
func TailOffset(f *os.File, n int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := st.Size()
	if n == 0 {
		return end, nil
	}
	buf := make([]byte, 32<<10)
	pos, seen := end, int64(0)
	for pos > 0 {
		size := int64(len(buf))
		if pos < size {
			size = pos
		}
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && err != io.EOF {
			return 0, err
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				continue
			}
			if pos+i == end-1 {
				continue // the final newline ends the last line, it does not start another
			}
			seen++
			if seen == n {
				return pos + i + 1, nil
			}
		}
	}
	return 0, nil
}

// Tail returns the content of the last n lines of the log at path, at
// most maxBytes of it (the end kept), partial lines joined.
func Tail(path string, n int64, maxBytes int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	off, err := TailOffset(f, n)
	if err != nil {
		return "", err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return "", err
	}
	var out []byte
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		e, err := Parse(s.Bytes())
		if err != nil {
			continue
		}
		out = append(out, e.Content...)
		if !e.Partial {
			out = append(out, '\n')
		}
	}
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out), s.Err()
}
