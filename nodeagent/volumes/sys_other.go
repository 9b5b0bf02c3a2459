//go:build !linux

package volumes

import (
	"errors"
	"io/fs"
)

// hostMounter cannot mount outside Linux: memory-backed volumes fail there.
type hostMounter struct{}

var errNoMount = errors.New("tmpfs volumes need Linux")

func (hostMounter) MountTmpfs(string, int64) error    { return errNoMount }
func (hostMounter) Unmount(string) error              { return errNoMount }
func (hostMounter) IsMountpoint(string) (bool, error) { return false, nil }

// deviceOf is unknown here: every path counts as one file system.
func deviceOf(fs.FileInfo) uint64 { return 0 }

// statGID is unknown here.
func statGID(fs.FileInfo) int64 { return -1 }
