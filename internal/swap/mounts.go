package swap

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubeparts/kubeparts/internal/mountinfo"
)

// mountInfo is the kernel's table of this process's mounts; tests point it elsewhere.
var mountInfo = mountinfo.Self

// refuseMounts fails a plan that would replace or remove a file that is a mount point:
// the rename or unlink would fail with EBUSY halfway through the swap. kind's
// extraMounts put a static pod there that way (config/kind/cluster.yaml), and only the
// one who mounted it can take it away, so the error says what to do instead.
func (p *Plan) refuseMounts() error {
	points, err := mountinfo.Points(mountInfo)
	if os.IsNotExist(err) {
		return nil // not Linux: nothing to check
	}
	if err != nil {
		return err
	}
	mounted := map[string]bool{}
	for _, mp := range points {
		mounted[filepath.Clean(mp)] = true
	}
	for _, c := range p.Changes {
		if c.Old == nil {
			continue
		}
		path, err := filepath.EvalSymlinks(c.Path)
		if err != nil {
			path = c.Path
		}
		if mounted[filepath.Clean(path)] {
			return fmt.Errorf("%s is a mount point (kind's extraMounts put config/kind's static pods there that way): swap cannot replace or remove it; unmount it, or create the cluster without that mount, then swap", c.Path)
		}
	}
	return nil
}
