package volumes

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubeparts/kubeparts/nodeagent/fieldpath"
)

// Mounts is the CRI mounts of container c's volumeMounts, over the volumes
// Setup returned. env is the container's resolved environment, which
// subPathExpr expands against. A subPath is created if missing (as a
// directory with the volume's mode, like the kubelet) and must stay inside
// its volume, symlinks included; the mount then uses its resolved path so
// the runtime does not follow a link swapped in later.
func Mounts(pod *corev1.Pod, c *corev1.Container, vols map[string]Volume, env map[string]string) ([]*runtimeapi.Mount, error) {
	mounts := make([]*runtimeapi.Mount, 0, len(c.VolumeMounts))
	for _, vm := range c.VolumeMounts {
		fail := func(format string, a ...any) ([]*runtimeapi.Mount, error) {
			return nil, fmt.Errorf("volumeMount %q of container %q: %s", vm.Name, c.Name, fmt.Sprintf(format, a...))
		}
		vol, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", vm.Name, c.Name)
		}
		subPath := vm.SubPath
		if vm.SubPathExpr != "" {
			var missing []string
			subPath, missing = fieldpath.ExpandStrict(vm.SubPathExpr, env)
			if len(missing) > 0 {
				return fail("subPathExpr %q: missing value for %s", vm.SubPathExpr, strings.Join(missing, ", "))
			}
		}
		hostPath := vol.HostPath
		if subPath != "" {
			if filepath.IsAbs(subPath) {
				return fail("error SubPath `%s` must not be an absolute path", subPath)
			}
			for _, part := range strings.Split(subPath, "/") {
				if part == ".." {
					return fail("unable to provision SubPath `%s`: must not contain '..'", subPath)
				}
			}
			var err error
			if hostPath, err = subPathDir(vol.HostPath, subPath); err != nil {
				return fail("%v", err)
			}
		}
		propagation, err := propagation(vm.MountPropagation)
		if err != nil {
			return fail("%v", err)
		}
		containerPath := vm.MountPath
		if !strings.HasPrefix(containerPath, "/") {
			containerPath = "/" + containerPath
		}
		mounts = append(mounts, &runtimeapi.Mount{
			ContainerPath: containerPath,
			HostPath:      hostPath,
			Readonly:      vm.ReadOnly || vol.ReadOnly,
			// IfPossible stays a plain read-only mount: we do not ask the
			// runtime whether it supports recursive ones; Enabled insists,
			// and the runtime fails the container if it cannot.
			RecursiveReadOnly: vm.RecursiveReadOnly != nil && *vm.RecursiveReadOnly == corev1.RecursiveReadOnlyEnabled,
			Propagation:       propagation,
		})
	}
	return mounts, nil
}

// subPathDir resolves subPath under the volume at volPath, creating missing
// directories one at a time and refusing any step, symlinks followed, that
// leaves the volume. It returns the resolved path.
func subPathDir(volPath, subPath string) (string, error) {
	base, err := filepath.EvalSymlinks(volPath)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(base)
	if err != nil {
		return "", err
	}
	// The volume root's mode, setgid and sticky bits included, as the
	// kubelet gives a subPath it creates (with an fsGroup: "dgtrwxrwxrwx"
	// on a memory-backed emptyDir).
	perm := fi.Mode() & (fs.ModePerm | fs.ModeSetgid | fs.ModeSticky)
	cur := base
	for _, part := range strings.Split(filepath.Clean(subPath), "/") {
		if part == "" || part == "." {
			continue
		}
		next := filepath.Join(cur, part)
		if _, err := os.Lstat(next); os.IsNotExist(err) {
			if err := os.Mkdir(next, perm); err != nil && !os.IsExist(err) {
				return "", fmt.Errorf("failed to create subPath directory %s: %w", next, err)
			}
			if err := os.Chmod(next, perm); err != nil { // past the umask
				return "", err
			}
		} else if err != nil {
			return "", err
		}
		resolved, err := filepath.EvalSymlinks(next)
		if err != nil {
			return "", err
		}
		if !within(base, resolved) {
			return "", fmt.Errorf("subpath %q not within volume path %q", subPath, volPath)
		}
		cur = resolved
	}
	return cur, nil
}

func within(base, p string) bool {
	return p == base || strings.HasPrefix(p, strings.TrimSuffix(base, "/")+"/")
}

func propagation(mode *corev1.MountPropagationMode) (runtimeapi.MountPropagation, error) {
	switch {
	case mode == nil, *mode == corev1.MountPropagationNone:
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	case *mode == corev1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, nil
	case *mode == corev1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, nil
	}
	return 0, fmt.Errorf("invalid MountPropagation mode: %q", *mode)
}
