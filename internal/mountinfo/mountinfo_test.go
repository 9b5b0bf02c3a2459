package mountinfo

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/data/plain`:           "/data/plain",
		`/data/with\040space`:   "/data/with space",
		`/data/tab\011and\134b`: "/data/tab\tand\\b",
		`/end\040`:              "/end ",
		`/short\04`:             `/short\04`, // not a whole escape: kept
		`/not\09x`:              `/not\09x`,  // 9 is not octal
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPoints(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mountinfo")
	table := "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
		"612 22 0:5 /x /etc/kubernetes/manifests/a\\040b.yaml ro - ext4 /dev/vdb ro\n" +
		"short line\n"
	if err := os.WriteFile(file, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Points(file)
	if want := []string{"/", "/etc/kubernetes/manifests/a b.yaml"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("Points = %q, %v; want %q", got, err, want)
	}
	if _, err := Points(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("a missing table: %v, want not-exist", err)
	}
}
