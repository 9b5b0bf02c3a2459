package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// file is one file of a volume's payload.
type file struct {
	data []byte
	mode int32
	uid  *int64 // its owner; nil: the agent's user (root)
}

const (
	dataLink    = "..data"
	dataLinkTmp = "..data_tmp"
	// tsPrefix starts the names of the timestamped content directories.
	tsPrefix = ".."
)

// writeAtomic makes dir show exactly payload, switching all files at once:
// the content goes into a fresh ..<timestamp> directory, then the ..data
// symlink is swapped to it by a rename, and every top-level name is a
// symlink through ..data. A container therefore reads either the old or
// the new content, never a mix (except through a single-file subPath
// mount, which pins the file it was mounted with). An unchanged payload
// writes nothing. With an fsGroup (gid) everything belongs to that group,
// which may read every file, as the kubelet's volume ownership does.
func writeAtomic(dir string, payload map[string]file, now time.Time, gid *int64) error {
	clean := make(map[string]file, len(payload))
	for p, f := range payload {
		if err := validatePath(p); err != nil {
			return err
		}
		if gid != nil {
			f.mode |= 0o440
		}
		clean[filepath.Clean(p)] = f
	}
	oldTs, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var oldTop map[string]bool
	if oldTs != "" {
		same, top, err := sameContent(filepath.Join(dir, oldTs), clean)
		if err != nil {
			return err
		}
		if same {
			return linkVisible(dir, clean)
		}
		oldTop = top
	}

	tsDir, err := os.MkdirTemp(dir, now.UTC().Format(tsPrefix+"2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := writeFiles(tsDir, clean, gid); err != nil {
		os.RemoveAll(tsDir)
		return err
	}
	tmp := filepath.Join(dir, dataLinkTmp)
	os.Remove(tmp) // left by an interrupted write
	if err := os.Symlink(filepath.Base(tsDir), tmp); err != nil {
		os.RemoveAll(tsDir)
		return err
	}
	// rename(2) replaces the old link in one step: the switch itself.
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		os.Remove(tmp)
		os.RemoveAll(tsDir)
		return err
	}
	if err := linkVisible(dir, clean); err != nil {
		return err
	}
	// Names the new payload lacks would dangle: drop their links.
	newTop := topLevel(clean)
	for name := range oldTop {
		if _, ok := newTop[name]; ok {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	// The previous content, and any left by interrupted writes.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() && strings.HasPrefix(n, tsPrefix) && n != filepath.Base(tsDir) {
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// validatePath keeps payload paths inside the volume and clear of the
// writer's own ..names.
func validatePath(p string) error {
	if p == "" {
		return errors.New("invalid path: must not be empty")
	}
	if filepath.IsAbs(p) {
		return fmt.Errorf("invalid path %q: must be relative", p)
	}
	parts := strings.Split(p, "/")
	for _, part := range parts {
		if part == ".." {
			return fmt.Errorf("invalid path %q: must not contain '..'", p)
		}
		if len(part) > 255 {
			return fmt.Errorf("invalid path %q: file names must be at most 255 characters", p)
		}
	}
	if strings.HasPrefix(parts[0], "..") {
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	if clean := filepath.Clean(p); clean == "." {
		return fmt.Errorf("invalid path %q: must name a file", p)
	}
	return nil
}

func writeFiles(root string, payload map[string]file, gid *int64) error {
	for p, f := range payload {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(f.mode) & fs.ModePerm
		if err := os.WriteFile(full, f.data, mode); err != nil {
			return err
		}
		if err := os.Chmod(full, mode); err != nil { // past the umask
			return err
		}
		if f.uid != nil || gid != nil {
			if err := os.Lchown(full, idOr(f.uid), idOr(gid)); err != nil {
				return err
			}
		}
	}
	// MkdirTemp made root 0700, MkdirAll's modes met the umask: containers
	// running as any user must traverse them. Under an fsGroup directories
	// belong to it and pass it on (setgid).
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return ownDir(p, 0o755, gid)
	})
}

// ownDir sets a volume directory's mode and, with an fsGroup, gives it to
// that group with the setgid bit, so what is created inside joins the group.
func ownDir(dir string, mode fs.FileMode, gid *int64) error {
	if gid != nil {
		if err := os.Chown(dir, -1, int(*gid)); err != nil {
			return err
		}
		mode |= fs.ModeSetgid
	}
	return os.Chmod(dir, mode)
}

func idOr(id *int64) int {
	if id == nil {
		return -1
	}
	return int(*id)
}

// sameContent tells whether tsDir holds exactly payload (same files, data
// and modes), and lists its top-level names.
func sameContent(tsDir string, payload map[string]file) (bool, map[string]bool, error) {
	top := map[string]bool{}
	files := 0
	same := true
	err := filepath.WalkDir(tsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tsDir, p)
		if rel == "." {
			return nil
		}
		top[strings.SplitN(rel, string(filepath.Separator), 2)[0]] = true
		if d.IsDir() || !same {
			return nil
		}
		files++
		f, ok := payload[rel]
		if !ok || !d.Type().IsRegular() {
			same = false
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != fs.FileMode(f.mode)&fs.ModePerm {
			same = false
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		same = bytes.Equal(data, f.data)
		return nil
	})
	if os.IsNotExist(err) {
		// ..data points nowhere: rewrite.
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	return same && files == len(payload), top, nil
}

// linkVisible makes each top-level name of the payload a symlink through
// ..data. Something else already at that name (a directory a subPath
// mount created, say) is left alone, as the kubelet does.
func linkVisible(dir string, payload map[string]file) error {
	for name := range topLevel(payload) {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			continue
		} else if !os.IsNotExist(err) {
			return err
		}
		if err := os.Symlink(filepath.Join(dataLink, name), p); err != nil {
			return err
		}
	}
	return nil
}

func topLevel(payload map[string]file) map[string]struct{} {
	top := make(map[string]struct{}, len(payload))
	for p := range payload {
		top[strings.SplitN(p, "/", 2)[0]] = struct{}{}
	}
	return top
}
