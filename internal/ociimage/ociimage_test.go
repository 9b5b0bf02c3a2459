package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// readTar returns the archive's regular files by name.
func readTar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			data, _ := io.ReadAll(tr)
			files[h.Name] = data
			files[h.Name+"#mode"] = []byte{byte(h.Mode >> 6), byte(h.Mode >> 3 & 7), byte(h.Mode & 7)}
		}
	}
}

func blob(t *testing.T, files map[string][]byte, digest string) []byte {
	t.Helper()
	hexsum, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q is not sha256", digest)
	}
	data, ok := files["blobs/sha256/"+hexsum]
	if !ok {
		t.Fatalf("blob %s missing", digest)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != hexsum {
		t.Fatalf("blob %s has digest %x", digest, sum)
	}
	return data
}

// TestWriteLayout follows the image from index.json to the layer, as containerd's import
// does, checking every digest on the way.
func TestWriteLayout(t *testing.T) {
	var buf bytes.Buffer
	img := Image{
		Name:       "registry.k8s.io/pause:3.10",
		Files:      []File{{Path: "bin/tool", Mode: 0o755, Data: []byte("#!tool")}, {Path: "etc/conf", Mode: 0o644, Data: []byte("x=1")}},
		Entrypoint: []string{"/bin/tool"},
	}
	if err := Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, bytes.NewReader(buf.Bytes()))
	if !strings.Contains(string(files["oci-layout"]), `"imageLayoutVersion":"1.0.0"`) {
		t.Fatalf("oci-layout = %s", files["oci-layout"])
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %s", err, files["index.json"])
	}
	if got := index.Manifests[0].Annotations["io.containerd.image.name"]; got != img.Name {
		t.Fatalf("image name annotation = %q", got)
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct {
			Digest string
			Size   int64
		}
	}
	if err := json.Unmarshal(blob(t, files, index.Manifests[0].Digest), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	var config struct {
		Config struct{ Entrypoint []string }
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blob(t, files, manifest.Config.Digest), &config); err != nil {
		t.Fatal(err)
	}
	if len(config.Config.Entrypoint) != 1 || config.Config.Entrypoint[0] != "/bin/tool" {
		t.Fatalf("entrypoint = %v", config.Config.Entrypoint)
	}
	gz := blob(t, files, manifest.Layers[0].Digest)
	if int64(len(gz)) != manifest.Layers[0].Size {
		t.Fatalf("layer size %d, manifest says %d", len(gz), manifest.Layers[0].Size)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	sum := sha256.Sum256(raw)
	if config.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatal("diff_id does not match the uncompressed layer")
	}
	layer := readTar(t, bytes.NewReader(raw))
	if string(layer["bin/tool"]) != "#!tool" || string(layer["etc/conf"]) != "x=1" {
		t.Fatalf("layer files = %v", layer)
	}
	if m := layer["bin/tool#mode"]; m[0] != 7 || m[1] != 5 || m[2] != 5 {
		t.Fatalf("bin/tool mode = %o%o%o, want 755", m[0], m[1], m[2])
	}
}

func TestWriteIsReproducible(t *testing.T) {
	img := Image{Name: "example/app:1", Files: []File{{Path: "b", Mode: 0o644, Data: []byte("b")}, {Path: "a", Mode: 0o644, Data: []byte("a")}},
		Labels: map[string]string{"org.opencontainers.image.version": "v1", "org.opencontainers.image.revision": "abc", "org.opencontainers.image.source": "https://example.org/app"}}
	var one, two bytes.Buffer
	if err := Write(&one, img); err != nil {
		t.Fatal(err)
	}
	img.Files[0], img.Files[1] = img.Files[1], img.Files[0]
	if err := Write(&two, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Fatal("same image written twice differs: re-imports would not be no-ops")
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	for _, img := range []Image{
		{Name: "", Files: []File{{Path: "a"}}},
		{Name: "x:1", Files: []File{{Path: "/abs"}}},
		{Name: "x:1", Files: []File{{Path: ""}}},
	} {
		if err := Write(io.Discard, img); err == nil {
			t.Errorf("Write(%+v) succeeded", img)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"registry.k8s.io/pause:3.10":                 "registry.k8s.io/pause:3.10",
		"kubeparts/kubeparts-controller-manager:dev": "docker.io/kubeparts/kubeparts-controller-manager:dev",
		"busybox:1":          "docker.io/library/busybox:1",
		"localhost/x:1":      "localhost/x:1",
		"127.0.0.1:5000/x:1": "127.0.0.1:5000/x:1",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteUserAndXattrs checks the image config's User and a file's extended attributes,
// which the CoreDNS image needs to bind port 53 as a non-root user.
func TestWriteUserAndXattrs(t *testing.T) {
	caps := CapabilityXattr(10)
	img := Image{
		Name:       "registry.k8s.io/coredns/coredns:v1",
		Files:      []File{{Path: "coredns", Mode: 0o755, Data: []byte("bin"), Xattrs: map[string]string{"security.capability": caps}}},
		Entrypoint: []string{"/coredns"},
		User:       "65532:65532",
		Labels:     map[string]string{"org.opencontainers.image.revision": "abc"},
	}
	var buf bytes.Buffer
	if err := Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, bytes.NewReader(buf.Bytes()))
	var index struct{ Manifests []struct{ Digest string } }
	var manifest struct {
		Config      struct{ Digest string }
		Layers      []struct{ Digest string }
		Annotations map[string]string
	}
	var config struct {
		Config struct {
			User   string
			Labels map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(blob(t, files, index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(blob(t, files, manifest.Config.Digest), &config); err != nil {
		t.Fatal(err)
	}
	if config.Config.User != "65532:65532" {
		t.Fatalf("config User = %q", config.Config.User)
	}
	if config.Config.Labels["org.opencontainers.image.revision"] != "abc" || manifest.Annotations["org.opencontainers.image.revision"] != "abc" {
		t.Fatalf("revision label: config %v, manifest annotations %v", config.Config.Labels, manifest.Annotations)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(t, files, manifest.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "coredns" {
			found = true
			if got := h.PAXRecords["SCHILY.xattr.security.capability"]; got != caps {
				t.Fatalf("security.capability = %x, want %x", got, caps)
			}
		} else if len(h.PAXRecords) != 0 {
			t.Fatalf("%s has PAX records %v", h.Name, h.PAXRecords)
		}
	}
	if !found {
		t.Fatal("coredns missing from the layer")
	}

	// Without User the config has no User key, so existing images keep their digests.
	img.User = ""
	buf.Reset()
	if err := Write(&buf, img); err != nil {
		t.Fatal(err)
	}
	if files := readTar(t, bytes.NewReader(buf.Bytes())); bytes.Contains(configOf(t, files), []byte(`"User"`)) {
		t.Fatal("config has a User key although Image.User is empty")
	}
}

func configOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var index struct{ Manifests []struct{ Digest string } }
	var manifest struct{ Config struct{ Digest string } }
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(blob(t, files, index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	return blob(t, files, manifest.Config.Digest)
}

// TestCapabilityXattr compares with what `setcap ...=+ep` writes (read back with getxattr).
func TestCapabilityXattr(t *testing.T) {
	for _, tc := range []struct {
		caps []uint
		want string
	}{
		{[]uint{10}, "0100000200040000000000000000000000000000"},         // cap_net_bind_service
		{[]uint{10, 25, 31}, "0100000200040082000000000000000000000000"}, // + cap_sys_time, cap_setfcap
		{[]uint{32}, "0100000200000000000000000100000000000000"},         // cap_mac_override: second word
	} {
		if got := hex.EncodeToString([]byte(CapabilityXattr(tc.caps...))); got != tc.want {
			t.Errorf("CapabilityXattr(%v) = %s, want %s", tc.caps, got, tc.want)
		}
	}
}
