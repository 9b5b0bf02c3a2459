// Package volumes materializes a pod's volumes on the host as the kubelet
// does, for the agent to bind-mount into the containers through the CRI:
// emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes,
// laid out under <root>/<podUID>/volumes/<plugin>/<name> like the kubelet's
// pods directory so tools that know that layout find them.
//
// With a pod fsGroup, emptyDirs and the content volumes belong to that group
// (setgid directories, group-readable files), and the service account token
// belongs to the pods' single runAsUser if all containers share one, as the
// kubelet's volume ownership does.
//
// Not implemented, unlike the kubelet: fsGroupChangePolicy (moot: the agent
// never changes ownership of an existing emptyDir), SELinux relabeling, emptyDir sizeLimit eviction (a Memory
// emptyDir is still capped by its tmpfs size), and every volume type backed
// by storage (PVCs, CSI, ephemeral, image, in-tree network volumes), which
// fail with an error naming the type.
package volumes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// Plugin directory names, as the kubelet escapes its plugin names.
const (
	pluginEmptyDir    = "kubernetes.io~empty-dir"
	pluginConfigMap   = "kubernetes.io~configmap"
	pluginSecret      = "kubernetes.io~secret"
	pluginProjected   = "kubernetes.io~projected"
	pluginDownwardAPI = "kubernetes.io~downward-api"
)

// emptyDirPerm lets containers running as any user write an emptyDir.
const emptyDirPerm os.FileMode = 0o777

// defaultMode is the API's default file mode of configMap, secret,
// downwardAPI and projected volumes, for specs that skipped defaulting.
const defaultMode int32 = 0o644

// Volume is one of a pod's volumes as materialized on the host.
type Volume struct {
	// HostPath is the directory (or, for a hostPath volume, whatever the
	// path names) to bind-mount.
	HostPath string
	// ReadOnly volumes are mounted read-only whatever the volumeMount says:
	// the kubelet does so for secret, configMap, projected and downwardAPI.
	ReadOnly bool
}

// mounter does the host mounts of memory-backed volumes; tests replace it.
type mounter interface {
	// MountTmpfs mounts a tmpfs of size bytes (0: the kernel's default) on dir.
	MountTmpfs(dir string, size int64) error
	Unmount(dir string) error
	// IsMountpoint tells whether dir is the root of a file system other than
	// its parent's.
	IsMountpoint(dir string) (bool, error)
}

// Manager materializes the volumes of the pods of one node.
type Manager struct {
	client kubeclient.Interface
	root   string
	alloc  corev1.ResourceList
	now    func() time.Time
	mount  mounter
	tokens tokenCache

	mu sync.Mutex
	// locks serializes Setup and Cleanup of one pod: both rewrite its tree.
	locks map[types.UID]*sync.Mutex
}

// NewManager manages pod volumes under root (the agent's pods directory),
// reading ConfigMaps and Secrets and requesting service account tokens
// through client. nodeAllocatable stands in for container limits that are
// unset (resourceFieldRef) and bounds memory-backed volumes; now is the
// clock (time.Now if nil).
func NewManager(client kubeclient.Interface, root string, nodeAllocatable corev1.ResourceList, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{
		client: client,
		root:   root,
		alloc:  nodeAllocatable,
		now:    now,
		mount:  hostMounter{},
		tokens: tokenCache{entries: map[tokenKey]*tokenEntry{}},
		locks:  map[types.UID]*sync.Mutex{},
	}
}

func (m *Manager) lock(uid types.UID) func() {
	m.mu.Lock()
	l := m.locks[uid]
	if l == nil {
		l = &sync.Mutex{}
		m.locks[uid] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// setupError is the kubelet's FailedMount event text, so users see the
// message they know.
type setupError struct {
	volume string
	err    error
}

func (e *setupError) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", e.volume, e.err)
}

func (e *setupError) Unwrap() error { return e.err }

// Setup materializes every volume of the pod and returns them by name. It is
// idempotent and meant to run on every sync of the pod: it re-reads
// ConfigMaps, Secrets and the pod's own fields and rewrites a volume only
// when its content changed, so updates reach running containers as with
// the kubelet, and it renews service account tokens when they are due. A
// volume that fails does not stop the others; the error joins every
// failure, each naming its volume.
func (m *Manager) Setup(ctx context.Context, pod *corev1.Pod) (map[string]Volume, error) {
	if err := checkPathElement("pod UID", string(pod.UID)); err != nil {
		return nil, err
	}
	defer m.lock(pod.UID)()
	src := &sources{ctx: ctx, client: m.client, namespace: pod.Namespace,
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	vols := make(map[string]Volume, len(pod.Spec.Volumes))
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		vol, err := m.setupVolume(ctx, pod, v, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		vols[v.Name] = vol
	}
	return vols, errors.Join(errs...)
}

func (m *Manager) setupVolume(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, src *sources) (Volume, error) {
	// Static pods skip API validation: never let a name climb out of the pod's tree.
	if err := checkPathElement("volume name", v.Name); err != nil {
		return Volume{}, &setupError{v.Name, err}
	}
	dir := func(plugin string) string {
		return filepath.Join(m.root, string(pod.UID), "volumes", plugin, v.Name)
	}
	fail := func(err error) (Volume, error) { return Volume{}, &setupError{v.Name, err} }
	switch s := v.VolumeSource; {
	case s.HostPath != nil:
		if err := checkHostPath(s.HostPath.Path, s.HostPath.Type); err != nil {
			return fail(err)
		}
		return Volume{HostPath: s.HostPath.Path}, nil

	case s.EmptyDir != nil:
		d := dir(pluginEmptyDir)
		switch s.EmptyDir.Medium {
		case corev1.StorageMediumDefault:
			if err := m.makeEmptyDir(d, fsGroup(pod)); err != nil {
				return fail(err)
			}
		case corev1.StorageMediumMemory:
			if err := m.makeTmpfs(d, m.memorySize(pod, s.EmptyDir.SizeLimit), fsGroup(pod)); err != nil {
				return fail(err)
			}
		default:
			return fail(fmt.Errorf("emptyDir medium %q is not supported by kubeparts-nodeagent", s.EmptyDir.Medium))
		}
		return Volume{HostPath: d}, nil

	case s.ConfigMap != nil:
		cm, err := src.configMap(s.ConfigMap.Name, isTrue(s.ConfigMap.Optional))
		if err != nil {
			return fail(err)
		}
		payload, err := configMapPayload(s.ConfigMap.Items, cm, modeOr(s.ConfigMap.DefaultMode), isTrue(s.ConfigMap.Optional))
		if err != nil {
			return fail(err)
		}
		// On disk, as the kubelet keeps ConfigMaps: they are not secret.
		return m.writeVolume(pod, dir(pluginConfigMap), false, payload, v.Name)

	case s.Secret != nil:
		sec, err := src.secret(s.Secret.SecretName, isTrue(s.Secret.Optional))
		if err != nil {
			return fail(err)
		}
		payload, err := secretPayload(s.Secret.Items, sec, modeOr(s.Secret.DefaultMode), isTrue(s.Secret.Optional))
		if err != nil {
			return fail(err)
		}
		return m.writeVolume(pod, dir(pluginSecret), true, payload, v.Name)

	case s.DownwardAPI != nil:
		payload, err := m.downwardAPIPayload(s.DownwardAPI.Items, pod, modeOr(s.DownwardAPI.DefaultMode))
		if err != nil {
			return fail(err)
		}
		return m.writeVolume(pod, dir(pluginDownwardAPI), true, payload, v.Name)

	case s.Projected != nil:
		payload, err := m.projectedPayload(ctx, pod, s.Projected, src)
		if err != nil {
			return fail(err)
		}
		return m.writeVolume(pod, dir(pluginProjected), true, payload, v.Name)

	case s.PersistentVolumeClaim != nil:
		vol, err := m.claimVolume(ctx, pod, v)
		if err != nil {
			return fail(err)
		}
		return vol, nil
	}
	return Volume{}, fmt.Errorf("volume %q: type %s is not supported by kubeparts-nodeagent", v.Name, sourceType(&v.VolumeSource))
}

// writeVolume atomically replaces the content of a read-only volume, in an
// emptyDir like the kubelet's (its 0777 root lets containers running as any
// user in); secret material (inMemory) lives on a tmpfs so it never reaches
// the disk.
func (m *Manager) writeVolume(pod *corev1.Pod, dir string, inMemory bool, payload map[string]file, name string) (Volume, error) {
	var err error
	gid := fsGroup(pod)
	if inMemory {
		err = m.makeTmpfs(dir, m.memorySize(pod, nil), gid)
	} else {
		err = m.makeEmptyDir(dir, gid)
	}
	if err == nil {
		err = writeAtomic(dir, payload, m.now(), gid)
	}
	if err != nil {
		return Volume{}, &setupError{name, err}
	}
	return Volume{HostPath: dir, ReadOnly: true}, nil
}

// makeEmptyDir creates dir world-writable. The mode is only set on creation:
// a container may have changed it since, and the kubelet sets up an
// emptyDir once per pod.
func (m *Manager) makeEmptyDir(dir string, gid *int64) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return err
	}
	if err := os.Mkdir(dir, emptyDirPerm); err != nil && !os.IsExist(err) {
		return err
	}
	return ownDir(dir, emptyDirPerm, gid) // past the umask
}

// makeTmpfs makes dir an emptyDir backed by a tmpfs, unless it already is.
func (m *Manager) makeTmpfs(dir string, size int64, gid *int64) error {
	if err := m.makeEmptyDir(dir, gid); err != nil {
		return err
	}
	mounted, err := m.mount.IsMountpoint(dir)
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	if err := m.mount.MountTmpfs(dir, size); err != nil {
		return fmt.Errorf("mounting tmpfs at %s: %w", dir, err)
	}
	// The fresh file system's root is 1777 (tmpfs' default); the kubelet
	// keeps the sticky bit when it gives the root to the fsGroup, and
	// containers see "dtrwxrwxrwx" (with an fsGroup "dgtrwxrwxrwx").
	return ownDir(dir, emptyDirPerm|fs.ModeSticky, gid)
}

// fsGroup is the pod's fsGroup, the group its volumes belong to.
func fsGroup(pod *corev1.Pod) *int64 {
	if pod.Spec.SecurityContext == nil {
		return nil
	}
	return pod.Spec.SecurityContext.FSGroup
}

// fsUser is the user every container of the pod runs as, if they all set
// the same runAsUser (theirs or the pod's); nil otherwise.
func fsUser(pod *corev1.Pod) *int64 {
	var uid *int64
	same := true
	visit := func(sc *corev1.SecurityContext) {
		u := (*int64)(nil)
		if sc != nil {
			u = sc.RunAsUser
		}
		if u == nil && pod.Spec.SecurityContext != nil {
			u = pod.Spec.SecurityContext.RunAsUser
		}
		switch {
		case u == nil, uid != nil && *uid != *u:
			same = false
		case uid == nil:
			uid = u
		}
	}
	for _, c := range pod.Spec.InitContainers {
		visit(c.SecurityContext)
	}
	for _, c := range pod.Spec.Containers {
		visit(c.SecurityContext)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		visit(c.SecurityContext)
	}
	if !same {
		return nil
	}
	return uid
}

// memorySize is the size of a memory-backed volume as the kubelet sizes it:
// node allocatable memory, lowered to the pod's memory limit when all its
// containers have one, lowered to sizeLimit if smaller. 0: no bound known,
// the kernel's default applies.
func (m *Manager) memorySize(pod *corev1.Pod, sizeLimit *resource.Quantity) int64 {
	var size int64
	if q, ok := m.alloc[corev1.ResourceMemory]; ok {
		size = q.Value()
	}
	lower := func(v int64) {
		if v > 0 && (size == 0 || v <= size) {
			size = v
		}
	}
	lower(podMemoryLimit(pod))
	if sizeLimit != nil {
		lower(sizeLimit.Value())
	}
	return size
}

// podMemoryLimit is the memory the pod may use at most, or 0 if some
// container is unlimited: app containers and sidecars run together, other
// init containers one at a time (alongside the sidecars started before them).
func podMemoryLimit(pod *corev1.Pod) int64 {
	var overhead int64
	if q, ok := pod.Spec.Overhead[corev1.ResourceMemory]; ok {
		overhead = q.Value()
	}
	if r := pod.Spec.Resources; r != nil {
		if q, ok := r.Limits[corev1.ResourceMemory]; ok {
			return q.Value() + overhead
		}
	}
	var apps, sidecars, initMax int64
	for _, c := range pod.Spec.InitContainers {
		q, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			return 0
		}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars += q.Value()
			initMax = max(initMax, sidecars)
			continue
		}
		initMax = max(initMax, sidecars+q.Value())
	}
	for _, c := range pod.Spec.Containers {
		q, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			return 0
		}
		apps += q.Value()
	}
	return max(apps+sidecars, initMax) + overhead
}

// Cleanup removes the pod's directory, unmounting its memory-backed
// volumes first, and forgets its tokens. Call it once the pod's containers
// are gone: they hold the mounts.
func (m *Manager) Cleanup(uid types.UID) error {
	if err := checkPathElement("pod UID", string(uid)); err != nil {
		return err
	}
	unlock := m.lock(uid)
	defer func() {
		unlock()
		m.mu.Lock()
		delete(m.locks, uid)
		m.mu.Unlock()
	}()
	podDir := filepath.Join(m.root, string(uid))
	plugins, err := os.ReadDir(filepath.Join(podDir, "volumes"))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, p := range plugins {
		vols, err := os.ReadDir(filepath.Join(podDir, "volumes", p.Name()))
		if err != nil {
			return err
		}
		for _, v := range vols {
			d := filepath.Join(podDir, "volumes", p.Name(), v.Name())
			if mounted, err := m.mount.IsMountpoint(d); err != nil {
				return fmt.Errorf("volume %q: %w", v.Name(), err)
			} else if mounted {
				if err := m.mount.Unmount(d); err != nil {
					return fmt.Errorf("volume %q: unmounting %s: %w", v.Name(), d, err)
				}
			}
		}
	}
	if err := removeOneFilesystem(podDir); err != nil {
		return err
	}
	m.tokens.forget(uid)
	return nil
}

// removeOneFilesystem removes path like os.RemoveAll but refuses to descend
// into another file system: a mount left there (a container's bidirectional
// mount, say) must not have its content deleted with the pod.
func removeOneFilesystem(path string) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return os.Remove(path)
	}
	return removeDir(path, deviceOf(fi))
}

func removeDir(dir string, dev uint64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				return err
			}
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if deviceOf(fi) != dev {
			return fmt.Errorf("not removing %s: it is a mount point", p)
		}
		if err := removeDir(p, dev); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}

// checkPathElement rejects names that would not stay one directory level.
func checkPathElement(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `/\`) || strings.ContainsRune(s, 0) {
		return fmt.Errorf("invalid %s %q", what, s)
	}
	return nil
}

// sourceType is the API name of the volume's source (persistentVolumeClaim,
// csi, ...), found by reflection so new types are named without a change here.
func sourceType(s *corev1.VolumeSource) string {
	v := reflect.ValueOf(s).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return "unknown"
}

func isTrue(b *bool) bool { return b != nil && *b }

func modeOr(m *int32) int32 {
	if m == nil {
		return defaultMode
	}
	return *m
}
