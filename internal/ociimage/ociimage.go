// Package ociimage writes single-layer container images as OCI image-layout tar archives,
// the form `ctr images import` loads. No registry is reachable on the machines kubeparts
// is developed on, so the images a local cluster needs (the sandbox image first) are
// built from binaries on the spot.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"
)

// File is one regular file (or, with Link, a symbolic link) of the image's only layer.
type File struct {
	Path string // inside the image, without a leading slash
	Mode int64
	Data []byte
	// Link makes the file a symbolic link to this target (busybox's applets).
	Link string
	// Xattrs are extended attributes of a regular file, written as PAX SCHILY.xattr
	// records, which containerd sets when it unpacks the layer: security.capability
	// gives a binary file capabilities (CapabilityXattr), as `setcap` does.
	Xattrs map[string]string
}

// Image describes what to write.
type Image struct {
	// Name is the reference containerd records, e.g. registry.k8s.io/pause:3.10.
	Name       string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	// User is the image config's user ("uid" or "uid:gid"); the runtime runs the
	// entrypoint as it unless the pod's securityContext says otherwise. Empty is root.
	User string
	// Labels go into the image config (what `crictl inspecti` and registries show)
	// and, as annotations, onto the manifest: the org.opencontainers.image.* keys
	// (version, source, revision) say where an image came from.
	Labels map[string]string
}

// Normalize completes a short image reference the way the CRI resolves it
// (kubeparts/x:1 is docker.io/kubeparts/x:1, pause:1 is docker.io/library/pause:1):
// `ctr images import` stores names as given, and a pod naming the short form would not
// find an image stored under it.
func Normalize(ref string) string {
	first, rest, found := strings.Cut(ref, "/")
	switch {
	case !found:
		return "docker.io/library/" + ref
	case strings.ContainsAny(first, ".:") || first == "localhost":
		return ref
	}
	return "docker.io/" + first + "/" + rest
}

// epoch keeps archives byte-identical across builds, so a re-import is a no-op.
var epoch = time.Unix(0, 0).UTC()

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Write writes the image as an OCI image layout in tar form to w.
func Write(w io.Writer, img Image) error {
	if img.Name == "" {
		return fmt.Errorf("image name is empty")
	}
	img.Name = Normalize(img.Name)
	layerTar, err := layer(img.Files)
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(layerTar); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	imgConfig := map[string]any{
		"Entrypoint": img.Entrypoint,
		"Cmd":        img.Cmd,
		"Env":        img.Env,
	}
	if img.User != "" { // absent rather than "", so images without a user keep their digests
		imgConfig["User"] = img.User
	}
	if len(img.Labels) > 0 { // encoding/json sorts map keys: the digest does not depend on map order
		imgConfig["Labels"] = img.Labels
	}
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       imgConfig,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digest(layerTar)}},
	})
	if err != nil {
		return err
	}
	manifestFields := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digest(config), Size: int64(len(config))},
		"layers": []descriptor{{
			MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digest(gz.Bytes()), Size: int64(gz.Len()),
		}},
	}
	if len(img.Labels) > 0 {
		manifestFields["annotations"] = img.Labels
	}
	manifest, err := json.Marshal(manifestFields)
	if err != nil {
		return err
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest(manifest), Size: int64(len(manifest)),
			Annotations: map[string]string{
				"io.containerd.image.name":          img.Name,
				"org.opencontainers.image.ref.name": img.Name,
			},
		}},
	})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(config), config},
		{blobPath(gz.Bytes()), gz.Bytes()},
		{blobPath(manifest), manifest},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, e := range entries {
		if err := writeFile(tw, e.name, 0o644, e.data, nil); err != nil {
			return err
		}
	}
	return tw.Close()
}

// layer builds the uncompressed layer tar, with parent directories for every file.
func layer(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		if f.Path == "" || f.Path[0] == '/' {
			return nil, fmt.Errorf("layer path %q must be relative", f.Path)
		}
		for i := range len(f.Path) {
			if f.Path[i] != '/' || dirs[f.Path[:i+1]] {
				continue
			}
			dirs[f.Path[:i+1]] = true
			if err := tw.WriteHeader(&tar.Header{Name: f.Path[:i+1], Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Name: f.Path, Typeflag: tar.TypeSymlink, Linkname: f.Link, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		if err := writeFile(tw, f.Path, f.Mode, f.Data, f.Xattrs); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte, xattrs map[string]string) error {
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: epoch}
	if len(xattrs) > 0 {
		// archive/tar writes PAX records sorted by key, so the layer stays reproducible.
		h.PAXRecords = map[string]string{}
		for k, v := range xattrs {
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		h.Format = tar.FormatPAX
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// CapabilityXattr is the security.capability value (struct vfs_cap_data, revision 2,
// little-endian) that `setcap CAPS=+ep` writes: the capabilities (numbers from
// linux/capability.h, below 64, e.g. 10 for CAP_NET_BIND_SERVICE) are permitted and
// effective on exec. A non-root entrypoint keeps a capability the container adds only this way: exec
// as a non-root user clears the capabilities the runtime gave the process, and
// containerd's CRI sets no ambient ones.
func CapabilityXattr(caps ...uint) string {
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	for _, c := range caps {
		word := 4 + 8*(c/32) // data[c/32].permitted; inheritable stays 0
		binary.LittleEndian.PutUint32(b[word:], binary.LittleEndian.Uint32(b[word:])|1<<(c%32))
	}
	return string(b[:])
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(b []byte) string {
	sum := sha256.Sum256(b)
	return "blobs/sha256/" + hex.EncodeToString(sum[:])
}
