package crilog

import (
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// files lists dir's names, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	reopens := 0
	// The runtime reopens by creating the file anew at path.
	reopen := func() error { reopens++; return os.WriteFile(path, nil, 0o640) }
	write := func(content string) {
		if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}

	write("small\n")
	if rotated, err := Rotate(path, 100, 3, now, reopen); rotated || err != nil || reopens != 0 {
		t.Fatalf("a log under its limit: rotated %v %v", rotated, err)
	}
	// Four rotations with at most 3 files: the current log, the newest
	// rotated one as is, one older compressed; the oldest are gone.
	for i := range 4 {
		write(strings.Repeat("x", 100) + string(rune('a'+i)))
		if rotated, err := Rotate(path, 100, 3, now.Add(time.Duration(i)*time.Minute), reopen); !rotated || err != nil {
			t.Fatalf("rotation %d: %v %v", i, rotated, err)
		}
	}
	want := []string{"0.log", "0.log.20261129-120200.gz", "0.log.20261129-120300"}
	if got := files(t, dir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v", got, want)
	}
	f, err := os.Open(filepath.Join(dir, want[1]))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(zr)
	f.Close()
	if !strings.HasSuffix(string(data), "c") {
		t.Errorf("compressed file holds %q, want the third rotation", data)
	}
	if reopens != 4 {
		t.Errorf("%d reopens, want 4", reopens)
	}

	// A runtime that cannot reopen: the rename is undone, nothing is lost.
	write(strings.Repeat("y", 200))
	if rotated, err := Rotate(path, 100, 3, now.Add(time.Hour), func() error { return errors.New("no such container") }); rotated || err == nil {
		t.Fatalf("failed reopen: rotated %v err %v", rotated, err)
	}
	if data, _ := os.ReadFile(path); len(data) != 200 {
		t.Errorf("current log after a failed reopen holds %d bytes, want 200", len(data))
	}
	if _, err := Rotate(path, 100, 1, now, reopen); err == nil {
		t.Error("maxFiles 1 accepted")
	}
}
