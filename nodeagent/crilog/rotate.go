package crilog

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Container log rotation as the kubelet's container log manager does it: a
// log that reached its size limit is renamed to <log>.<timestamp> and the
// runtime reopens the original path; the rotated files older than the
// newest are gzipped; at most maxFiles files are kept, the current one
// included, the oldest removed first. Readers of the current log (kubectl
// logs) are not affected.

const rotationTimestamp = "20060102-150405"

// Rotate rotates the log at path when it holds at least maxSize bytes.
// reopen asks the runtime to reopen the container's log at path; if it
// fails the rename is undone, so no line is lost. It reports whether it
// rotated.
func Rotate(path string, maxSize int64, maxFiles int, now time.Time, reopen func() error) (bool, error) {
	if maxFiles < 2 {
		return false, fmt.Errorf("at least 2 log files are needed to rotate, got %d", maxFiles)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() < maxSize {
		return false, err
	}
	rotated, err := rotatedLogs(path)
	if err != nil {
		return false, err
	}
	// Room for the file about to be rotated: maxFiles-2 older ones stay.
	for len(rotated) > maxFiles-2 {
		if err := os.Remove(rotated[0]); err != nil && !os.IsNotExist(err) {
			return false, err
		}
		rotated = rotated[1:]
	}
	for _, f := range rotated {
		if !strings.HasSuffix(f, ".gz") {
			if err := compress(f); err != nil {
				return false, err
			}
		}
	}
	target := path + "." + now.UTC().Format(rotationTimestamp)
	if _, err := os.Stat(target); err == nil {
		return false, nil // rotated this second already; next round
	}
	if err := os.Rename(path, target); err != nil {
		return false, err
	}
	if err := reopen(); err != nil {
		if rerr := os.Rename(target, path); rerr != nil {
			return false, fmt.Errorf("reopen log: %v; and undo rename: %w", err, rerr)
		}
		return false, fmt.Errorf("reopen log: %w", err)
	}
	return true, nil
}

// rotatedLogs lists path's rotated files, oldest first (their names sort
// by the timestamp).
func rotatedLogs(path string) ([]string, error) {
	matches, err := filepath.Glob(path + ".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		if !strings.HasSuffix(m, ".tmp") {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out, nil
}

// compress replaces f with f.gz, written through a temporary file so a
// crash leaves either the plain or the whole compressed file.
func compress(f string) error {
	in, err := os.Open(f)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := f + ".gz.tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, f+".gz"); err != nil {
		return err
	}
	return os.Remove(f)
}
