package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubeparts/kubeparts/internal/ociimage"
)

// The same binary and labels make the same archive, byte for byte (so the
// same digest): `make image` on one commit gives every node the same image,
// and a re-import is a no-op.
func TestRunIsReproducible(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "kubeparts-example")
	if err := os.WriteFile(binary, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := ociimage.Image{Name: "kubeparts/kubeparts-example:dev", User: "65532:65532",
		Labels: map[string]string{"org.opencontainers.image.revision": "abc", "org.opencontainers.image.version": "dev"}}
	var archives [][]byte
	for i := range 2 {
		out := filepath.Join(dir, "out", string(rune('a'+i))+".tar")
		if err := run(binary, img, out, nil); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		archives = append(archives, data)
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Fatal("two builds of the same inputs differ")
	}
	img.Labels = map[string]string{"org.opencontainers.image.revision": "def", "org.opencontainers.image.version": "dev"}
	other := filepath.Join(dir, "other.tar")
	if err := run(binary, img, other, nil); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(other); bytes.Equal(data, archives[0]) {
		t.Fatal("another revision label made the same archive: the label is not in the image")
	}
}

func TestRunRequiresInputs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		binary string
		img    ociimage.Image
		out    string
	}{
		{"no binary", "", ociimage.Image{Name: "a:b"}, "x.tar"},
		{"no name", "/bin/true", ociimage.Image{}, "x.tar"},
		{"no output", "/bin/true", ociimage.Image{Name: "a:b"}, ""},
	} {
		if err := run(tc.binary, tc.img, tc.out, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
