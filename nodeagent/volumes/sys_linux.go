package volumes

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// hostMounter mounts for real; the agent runs as root.
type hostMounter struct{}

func (hostMounter) MountTmpfs(dir string, size int64) error {
	opts := ""
	if size > 0 {
		opts = fmt.Sprintf("size=%d", size)
	}
	return unix.Mount("tmpfs", dir, "tmpfs", 0, opts)
}

func (hostMounter) Unmount(dir string) error {
	// No lazy detach: a busy mount means a container still uses it, and
	// removing the directory under it would be wrong.
	return unix.Unmount(dir, 0)
}

// IsMountpoint compares devices with the parent: enough for the tmpfs
// mounts we make ourselves (a bind mount of the same file system would
// not show, but we make none).
func (hostMounter) IsMountpoint(dir string) (bool, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return false, err
	}
	parent, err := os.Lstat(filepath.Dir(dir))
	if err != nil {
		return false, err
	}
	return deviceOf(fi) != deviceOf(parent), nil
}

func deviceOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev) //nolint:unconvert // Dev's type varies by arch
	}
	return 0
}

func statGID(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Gid)
	}
	return -1
}
