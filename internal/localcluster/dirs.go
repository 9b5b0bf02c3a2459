package localcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kubeparts/kubeparts/internal/mountinfo"
)

// dataDirLock is held by the `up` that owns a data dir, for as long as it runs.
type dataDirLock struct {
	f *os.File
	// uncleanPID is the pid of an earlier `up` that died without releasing the data dir
	// (it was killed); 0 when the last one stopped cleanly.
	uncleanPID int
}

const lockFile = "up.lock"

// lockDataDir takes the data dir, or says which running `up` has it.
func lockDataDir(dir string) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if pid := OwnerPID(dir); pid > 0 {
			return nil, fmt.Errorf("data dir %s is in use by a running cluster (kubeparts up, pid %d)", dir, pid)
		}
		return nil, fmt.Errorf("data dir %s is in use by a running cluster", dir)
	}
	old, _ := os.ReadFile(f.Name())
	unclean, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &dataDirLock{f: f, uncleanPID: unclean}, nil
}

func (l *dataDirLock) release() {
	_ = l.f.Truncate(0)
	_ = l.f.Close()
}

// OwnerPID returns the pid of the `up` running on dir, or 0 when none is.
func OwnerPID(dir string) int {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		return 0
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0 // nobody holds it
	}
	data, _ := os.ReadFile(f.Name())
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// unmountUnder detaches every mount below the given dirs, deepest first: volumes the
// kubelet mounted and rootfs or shm mounts containerd left behind would otherwise block
// removing the data dir, or pin the disk.
func unmountUnder(dirs ...string) error {
	points, err := mountinfo.Points(mountinfo.Self)
	if err != nil {
		return err
	}
	var targets []string
	for _, mp := range points {
		for _, d := range dirs {
			if strings.HasPrefix(mp, d+"/") {
				targets = append(targets, mp)
				break
			}
		}
	}
	sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
	var errs []string
	for _, t := range targets {
		if err := unix.Unmount(t, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			errs = append(errs, fmt.Sprintf("%s: %v", t, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("unmount: %s", strings.Join(errs, "; "))
	}
	return nil
}

// wipe empties the data dir for --fresh, keeping the lock file we hold.
func wipe(l Layout) error {
	if err := unmountUnder(l.DataDir, l.RunDir); err != nil {
		return err
	}
	entries, err := os.ReadDir(l.DataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == lockFile {
			continue
		}
		if err := os.RemoveAll(filepath.Join(l.DataDir, e.Name())); err != nil {
			return err
		}
	}
	return os.RemoveAll(l.RunDir)
}
