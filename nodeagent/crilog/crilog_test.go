package crilog

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseRejectsGarbage(t *testing.T) {
	for _, line := range []string{"", "no-time stdout F x", "2026-11-22T10:00:00Z"} {
		if _, err := Parse([]byte(line)); err == nil {
			t.Errorf("%q parsed", line)
		}
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	log := "2026-11-22T10:00:00Z stdout F one\n2026-11-22T10:00:01Z stderr P tw\n2026-11-22T10:00:01Z stderr F o\n2026-11-22T10:00:02Z stdout F three\n"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		n, max int
		want   string
	}{{80, 2048, "one\ntwo\nthree\n"}, {1, 2048, "three\n"}, {3, 2048, "two\nthree\n"}, {80, 4, "ree\n"}} {
		if got, err := Tail(path, int64(tt.n), tt.max); err != nil || got != tt.want {
			t.Errorf("Tail(%d, %d) = %q, %v; want %q", tt.n, tt.max, got, err, tt.want)
		}
	}
}
