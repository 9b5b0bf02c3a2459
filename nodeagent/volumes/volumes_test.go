package volumes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient/kubeclienttest"
)

// fakeMounter records tmpfs mounts instead of making them.
type fakeMounter struct {
	mounted   map[string]int64 // dir -> size
	mounts    int
	unmounted []string
	fail      error
}

func (f *fakeMounter) MountTmpfs(dir string, size int64) error {
	if f.fail != nil {
		return f.fail
	}
	f.mounts++
	f.mounted[dir] = size
	return nil
}

func (f *fakeMounter) Unmount(dir string) error {
	delete(f.mounted, dir)
	f.unmounted = append(f.unmounted, dir)
	return nil
}

func (f *fakeMounter) IsMountpoint(dir string) (bool, error) {
	_, ok := f.mounted[dir]
	return ok, nil
}

type env struct {
	m      *Manager
	client *fake.Clientset
	mnt    *fakeMounter
	root   string
	now    time.Time
	// tokens are the TokenRequests the API server answered.
	tokens   []*authenticationv1.TokenRequest
	tokenErr error
}

var alloc = corev1.ResourceList{
	corev1.ResourceCPU:              resource.MustParse("4"),
	corev1.ResourceMemory:           resource.MustParse("8Gi"),
	corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	e := &env{client: fake.NewClientset(objs...), mnt: &fakeMounter{mounted: map[string]int64{}},
		root: t.TempDir(), now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.m = NewManager(kubeclienttest.FromClientset(e.client), e.root, alloc, func() time.Time { return e.now })
	e.m.mount = e.mnt
	// The fake tracker knows no subresources: answer TokenRequests here,
	// valid for the lifetime asked for from the current fake time.
	e.client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		if e.tokenErr != nil {
			return true, nil, e.tokenErr
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		tr.Status.Token = fmt.Sprintf("token-%d", len(e.tokens)+1)
		tr.Status.ExpirationTimestamp = metav1.NewTime(e.now.Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))
		e.tokens = append(e.tokens, tr)
		return true, tr, nil
	})
	return e
}

func newPod(vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1",
			Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"note": "a \"quoted\"\nline"}},
		Spec: corev1.PodSpec{ServiceAccountName: "sa", Volumes: vols,
			Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
			}}}},
	}
}

func ptr[T any](v T) *T { return &v }

func (e *env) dir(plugin, name string) string {
	return filepath.Join(e.root, "uid-1", "volumes", plugin, name)
}

func (e *env) setup(t *testing.T, pod *corev1.Pod) map[string]Volume {
	t.Helper()
	vols, err := e.m.Setup(context.Background(), pod)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return vols
}

// files is what a container sees in dir: every regular file reached through
// the visible names, with its mode.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(rel string)
	walk = func(rel string) {
		p := filepath.Join(dir, rel)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if fi.IsDir() {
			sub, _ := os.ReadDir(p)
			for _, s := range sub {
				walk(filepath.Join(rel, s.Name()))
			}
			return
		}
		data, _ := os.ReadFile(p)
		got[rel] = fmt.Sprintf("%q %#o", data, fi.Mode().Perm())
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") {
			walk(e.Name())
		}
	}
	return got
}

func same(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %s, want %s (all: %v)", what, k, got[k], v, got)
		}
	}
}

func TestConfigMapItemsAndModes(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"},
		Data:       map[string]string{"a": "alpha", "b": "beta"},
		BinaryData: map[string][]byte{"bin": {0, 1, 0xfe}}}
	e := newEnv(t, cm)
	pod := newPod(
		corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		corev1.Volume{Name: "some", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, DefaultMode: ptr[int32](0o640),
			Items: []corev1.KeyToPath{{Key: "a", Path: "sub/dir/a.txt", Mode: ptr[int32](0o600)}, {Key: "bin", Path: "bin"}}}}},
	)
	vols := e.setup(t, pod)
	if got, want := vols["all"], (Volume{HostPath: e.dir(pluginConfigMap, "all"), ReadOnly: true}); got != want {
		t.Errorf("volume all = %+v, want %+v", got, want)
	}
	same(t, "all", files(t, e.dir(pluginConfigMap, "all")), map[string]string{
		"a": `"alpha" 0644`, "b": `"beta" 0644`, "bin": `"\x00\x01\xfe" 0644`})
	same(t, "some", files(t, e.dir(pluginConfigMap, "some")), map[string]string{
		"sub/dir/a.txt": `"alpha" 0600`, "bin": `"\x00\x01\xfe" 0640`})
	// Top-level names go through ..data; nested ones live in the data dir.
	if target, err := os.Readlink(filepath.Join(e.dir(pluginConfigMap, "some"), "sub")); err != nil || target != "..data/sub" {
		t.Errorf("sub link = %q, %v", target, err)
	}
	// Any container user may enter the volume.
	if fi, err := os.Stat(e.dir(pluginConfigMap, "all")); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("configMap volume dir: %v %v", fi.Mode(), err)
	}
	// ConfigMaps stay on disk; nothing was mounted.
	if e.mnt.mounts != 0 {
		t.Errorf("%d tmpfs mounts for configMap volumes", e.mnt.mounts)
	}
}

func TestMissingSources(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"a": "1"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"a": []byte("1")}}
	cmVol := func(name string, optional bool, items ...corev1.KeyToPath) corev1.Volume {
		return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: &optional, Items: items}}}
	}
	secVol := func(name string, optional bool, items ...corev1.KeyToPath) corev1.Volume {
		return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: name, Optional: &optional, Items: items}}}
	}
	for _, tc := range []struct {
		name    string
		vol     corev1.Volume
		wantErr string
		want    map[string]string
	}{
		{"required configmap missing", cmVol("x", false), `MountVolume.SetUp failed for volume "v" : configmap "x" not found`, nil},
		{"required secret missing", secVol("y", false), `MountVolume.SetUp failed for volume "v" : secret "y" not found`, nil},
		{"optional configmap missing", cmVol("x", true), "", map[string]string{}},
		{"optional secret missing", secVol("y", true, corev1.KeyToPath{Key: "k", Path: "k"}), "", map[string]string{}},
		{"required configmap key missing", cmVol("cfg", false, corev1.KeyToPath{Key: "k", Path: "k"}),
			`MountVolume.SetUp failed for volume "v" : configmap references non-existent config key: k`, nil},
		{"required secret key missing", secVol("sec", false, corev1.KeyToPath{Key: "k", Path: "k"}),
			`MountVolume.SetUp failed for volume "v" : references non-existent secret key: k`, nil},
		{"optional configmap key missing", cmVol("cfg", true, corev1.KeyToPath{Key: "k", Path: "k"}, corev1.KeyToPath{Key: "a", Path: "a"}),
			"", map[string]string{"a": `"1" 0644`}},
		{"item escaping", cmVol("cfg", false, corev1.KeyToPath{Key: "a", Path: "../a"}),
			`MountVolume.SetUp failed for volume "v" : invalid path "../a": must not contain '..'`, nil},
		{"absolute item", cmVol("cfg", false, corev1.KeyToPath{Key: "a", Path: "/etc/a"}),
			`MountVolume.SetUp failed for volume "v" : invalid path "/etc/a": must be relative`, nil},
		{"item named like the writer's files", cmVol("cfg", false, corev1.KeyToPath{Key: "a", Path: "..data"}),
			`MountVolume.SetUp failed for volume "v" : invalid path "..data": must not start with '..'`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, cm, sec)
			vols, err := e.m.Setup(context.Background(), newPod(tc.vol))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %s", err, tc.wantErr)
				}
				if _, ok := vols["v"]; ok {
					t.Error("failed volume returned")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			same(t, "files", files(t, vols["v"].HostPath), tc.want)
		})
	}
}

func TestConfigMapUpdatePropagates(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"a": "1", "b": "2"}}
	e := newEnv(t, cm)
	pod := newPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}})
	dir := e.dir(pluginConfigMap, "v")
	e.setup(t, pod)
	first, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil {
		t.Fatal(err)
	}

	// Unchanged: nothing rewritten.
	e.setup(t, pod)
	if again, _ := os.Readlink(filepath.Join(dir, dataLink)); again != first {
		t.Errorf("unchanged payload rewritten: ..data %s -> %s", first, again)
	}

	cm = cm.DeepCopy()
	cm.Data = map[string]string{"a": "one", "c": "3"}
	if _, err := e.client.CoreV1().ConfigMaps("ns").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.setup(t, pod)
	second, _ := os.Readlink(filepath.Join(dir, dataLink))
	if second == first || !strings.HasPrefix(second, "..2025_01_02_03_04_05.") {
		t.Errorf("..data -> %q after update (was %q)", second, first)
	}
	if _, err := os.Lstat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Errorf("old data dir %s not removed: %v", first, err)
	}
	same(t, "updated", files(t, dir), map[string]string{"a": `"one" 0644`, "c": `"3" 0644`})
	if _, err := os.Lstat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Errorf("link of removed key b left: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	if want := []string{second, dataLink, "a", "c"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("volume dir holds %v, want %v", names, want)
	}
}

func TestSecretBinaryInMemory(t *testing.T) {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"},
		Data: map[string][]byte{"key": {0xff, 0, 'x'}, "tls.crt": []byte("CERT")}}
	e := newEnv(t, sec)
	pod := newPod(corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: "sec", DefaultMode: ptr[int32](0o400)}}})
	vols := e.setup(t, pod)
	dir := e.dir(pluginSecret, "s")
	if vols["s"] != (Volume{HostPath: dir, ReadOnly: true}) {
		t.Errorf("volume = %+v", vols["s"])
	}
	same(t, "secret", files(t, dir), map[string]string{"key": `"\xff\x00x" 0400`, "tls.crt": `"CERT" 0400`})
	// On a tmpfs sized to the pod's memory limit (below node allocatable).
	if size, ok := e.mnt.mounted[dir]; !ok || size != 512<<20 {
		t.Errorf("tmpfs at %s: mounted %v size %d", dir, ok, size)
	}
	e.setup(t, pod)
	if e.mnt.mounts != 1 {
		t.Errorf("%d mounts after two syncs, want 1", e.mnt.mounts)
	}
}

func TestDownwardAPI(t *testing.T) {
	e := newEnv(t)
	pod := newPod(corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
		DefaultMode: ptr[int32](0o444),
		Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}, Mode: ptr[int32](0o400)},
			{Path: "tier", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}},
			{Path: "mem_mi", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
			{Path: "cpu_limit", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu"}},
			{Path: "cpu_req_m", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "requests.cpu", Divisor: resource.MustParse("1m")}},
			{Path: "cpu_req", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "requests.cpu"}},
		}}}})
	vols := e.setup(t, pod)
	dir := e.dir(pluginDownwardAPI, "info")
	if vols["info"] != (Volume{HostPath: dir, ReadOnly: true}) {
		t.Errorf("volume = %+v", vols["info"])
	}
	same(t, "downwardAPI", files(t, dir), map[string]string{
		"labels":      `"app=\"web\"\ntier=\"front\"" 0444`,
		"annotations": `"note=\"a \\\"quoted\\\"\\nline\"" 0444`,
		"name":        `"web" 0400`,
		"tier":        `"front" 0444`,
		"mem_mi":      `"512" 0444`,
		"cpu_limit":   `"4" 0444`, // unset: node allocatable
		"cpu_req_m":   `"250" 0444`,
		"cpu_req":     `"1" 0444`, // rounded up
	})
	// Relabeling the pod shows on the next sync.
	pod.Labels["tier"] = "back"
	e.setup(t, pod)
	if got := files(t, dir)["tier"]; got != `"back" 0444` {
		t.Errorf("tier after relabel = %s", got)
	}

	bad := newPod(corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
		Items: []corev1.DownwardAPIVolumeFile{{Path: "x", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.bogus"}}}}}})
	if _, err := e.m.Setup(context.Background(), bad); err == nil ||
		err.Error() != `MountVolume.SetUp failed for volume "info" : unsupported fieldPath: spec.bogus` {
		t.Errorf("bad field path: %v", err)
	}
}

// kubeAPIAccess is the projected volume the ServiceAccount admission plugin adds.
func kubeAPIAccess(exp int64) corev1.Volume {
	return corev1.Volume{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr[int32](0o644),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &exp}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		}}}}
}

func TestProjectedKubeAPIAccess(t *testing.T) {
	ca := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "ns"}, Data: map[string]string{"ca.crt": "CA"}}
	e := newEnv(t, ca)
	pod := newPod(kubeAPIAccess(3607))
	dir := e.dir(pluginProjected, "kube-api-access-x")
	start := e.now
	vols := e.setup(t, pod)
	if vols["kube-api-access-x"] != (Volume{HostPath: dir, ReadOnly: true}) {
		t.Errorf("volume = %+v", vols["kube-api-access-x"])
	}
	same(t, "projected", files(t, dir), map[string]string{
		"token": `"token-1" 0644`, "ca.crt": `"CA" 0644`, "namespace": `"ns" 0644`})
	if _, ok := e.mnt.mounted[dir]; !ok {
		t.Error("projected volume not on tmpfs")
	}
	if len(e.tokens) != 1 {
		t.Fatalf("%d token requests", len(e.tokens))
	}
	tr := e.tokens[0]
	if tr.Spec.Audiences != nil || *tr.Spec.ExpirationSeconds != 3607 ||
		*tr.Spec.BoundObjectRef != (authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: "web", UID: "uid-1"}) {
		t.Errorf("token request spec = %+v", tr.Spec)
	}
	var saName string
	for _, a := range e.client.Actions() {
		if a.GetSubresource() == "token" {
			saName = a.(k8stesting.CreateActionImpl).Name
		}
	}
	if saName != "sa" {
		t.Errorf("token requested for service account %q", saName)
	}
	// Renewal is due once 80% of the 3607s lifetime has passed.
	due := start.Add(3607 * time.Second).Add(-721 * time.Second)
	if at, ok := e.m.NextRefresh("uid-1"); !ok || !at.Equal(due) {
		t.Errorf("NextRefresh = %v %v, want %v", at, ok, due)
	}
	e.now = due.Add(-time.Second)
	e.setup(t, pod)
	if len(e.tokens) != 1 {
		t.Errorf("token renewed before 80%% of its lifetime: %d requests", len(e.tokens))
	}
	e.now = due.Add(time.Second)
	e.setup(t, pod)
	if len(e.tokens) != 2 {
		t.Fatalf("token not renewed after 80%% of its lifetime: %d requests", len(e.tokens))
	}
	if got := files(t, dir)["token"]; got != `"token-2" 0644` {
		t.Errorf("token file after renewal = %s", got)
	}

	// A failed renewal keeps the valid token, until it expires.
	e.tokenErr = errors.New("apiserver down")
	e.now = e.now.Add(3000 * time.Second)
	e.setup(t, pod)
	if got := files(t, dir)["token"]; got != `"token-2" 0644` {
		t.Errorf("token file after failed renewal = %s", got)
	}
	e.now = e.now.Add(time.Hour)
	if _, err := e.m.Setup(context.Background(), pod); err == nil || !strings.Contains(err.Error(), `volume "kube-api-access-x"`) ||
		!strings.Contains(err.Error(), "expired and refresh failed") {
		t.Errorf("expired token error: %v", err)
	}
}

func TestTokenDailyRenewalAndAudience(t *testing.T) {
	e := newEnv(t)
	week := int64(7 * 24 * 3600)
	pod := newPod(corev1.Volume{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Path: "vault/token", Audience: "vault", ExpirationSeconds: &week}}}}}})
	start := e.now
	e.setup(t, pod)
	if got := e.tokens[0].Spec.Audiences; len(got) != 1 || got[0] != "vault" {
		t.Errorf("audiences = %v", got)
	}
	if at, _ := e.m.NextRefresh("uid-1"); !at.Equal(start.Add(24 * time.Hour)) {
		t.Errorf("long-lived token due at %v, want after 24h", at)
	}
	e.now = start.Add(24*time.Hour + time.Second)
	e.setup(t, pod)
	if len(e.tokens) != 2 {
		t.Errorf("%d token requests after a day, want 2", len(e.tokens))
	}
}

func TestProjectedFailures(t *testing.T) {
	e := newEnv(t)
	pod := newPod(corev1.Volume{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: ptr("b"), Path: "b"}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}},
		}}}})
	_, err := e.m.Setup(context.Background(), pod)
	want := `MountVolume.SetUp failed for volume "p" : [projected source clusterTrustBundle is not supported by kubeparts-nodeagent, secret "nope" not found]`
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	// Nothing half-written for containers to see.
	if _, err := os.Lstat(filepath.Join(e.dir(pluginProjected, "p"), dataLink)); !os.IsNotExist(err) {
		t.Errorf("failed projected volume has content: %v", err)
	}
}

func TestEmptyDir(t *testing.T) {
	e := newEnv(t)
	pod := newPod(
		corev1.Volume{Name: "disk", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("64Mi"))}}},
		corev1.Volume{Name: "memBig", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("1Ti"))}}},
	)
	vols := e.setup(t, pod)
	for name, want := range map[string]Volume{
		"disk": {HostPath: e.dir(pluginEmptyDir, "disk")}, "mem": {HostPath: e.dir(pluginEmptyDir, "mem")},
	} {
		if vols[name] != want {
			t.Errorf("%s = %+v, want %+v", name, vols[name], want)
		}
		fi, err := os.Stat(want.HostPath)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 {
			t.Errorf("%s: %v %v", name, fi.Mode(), err)
		}
	}
	if _, ok := e.mnt.mounted[e.dir(pluginEmptyDir, "disk")]; ok {
		t.Error("disk emptyDir mounted")
	}
	// sizeLimit below the pod's limit wins; above it, the pod limit caps.
	if size := e.mnt.mounted[e.dir(pluginEmptyDir, "mem")]; size != 64<<20 {
		t.Errorf("mem tmpfs size %d", size)
	}
	if size := e.mnt.mounted[e.dir(pluginEmptyDir, "memBig")]; size != 512<<20 {
		t.Errorf("memBig tmpfs size %d", size)
	}
	// A container's chmod survives later syncs.
	if err := os.Chmod(e.dir(pluginEmptyDir, "disk"), 0o700); err != nil {
		t.Fatal(err)
	}
	e.setup(t, pod)
	if fi, _ := os.Stat(e.dir(pluginEmptyDir, "disk")); fi.Mode().Perm() != 0o700 {
		t.Errorf("emptyDir mode reset to %v", fi.Mode().Perm())
	}
	if e.mnt.mounts != 2 {
		t.Errorf("%d mounts after two syncs, want 2", e.mnt.mounts)
	}

	e2 := newEnv(t)
	e2.mnt.fail = errors.New("operation not permitted")
	_, err := e2.m.Setup(context.Background(), newPod(corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}))
	want := fmt.Sprintf(`MountVolume.SetUp failed for volume "mem" : mounting tmpfs at %s: operation not permitted`, e2.dir(pluginEmptyDir, "mem"))
	if err == nil || err.Error() != want {
		t.Errorf("mount failure: %v, want %s", err, want)
	}
	_, err = e2.m.Setup(context.Background(), newPod(corev1.Volume{Name: "huge", VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}}}))
	if err == nil || err.Error() != `MountVolume.SetUp failed for volume "huge" : emptyDir medium "HugePages" is not supported by kubeparts-nodeagent` {
		t.Errorf("hugepages: %v", err)
	}
}

func TestUnsupportedTypes(t *testing.T) {
	e := newEnv(t)
	pod := newPod(
		corev1.Volume{Name: "ok", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d"}}},
		corev1.Volume{Name: "eph", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}},
		corev1.Volume{Name: "img", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "x"}}},
		corev1.Volume{Name: "nfs", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/"}}},
		corev1.Volume{Name: "none"},
	)
	vols, err := e.m.Setup(context.Background(), pod)
	want := strings.Join([]string{
		`volume "csi": type csi is not supported by kubeparts-nodeagent`,
		`volume "eph": type ephemeral is not supported by kubeparts-nodeagent`,
		`volume "img": type image is not supported by kubeparts-nodeagent`,
		`volume "nfs": type nfs is not supported by kubeparts-nodeagent`,
		`volume "none": type unknown is not supported by kubeparts-nodeagent`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	if len(vols) != 1 || vols["ok"].HostPath == "" {
		t.Errorf("supported volume not set up beside the failures: %+v", vols)
	}
}

func TestInvalidNames(t *testing.T) {
	e := newEnv(t)
	pod := newPod(corev1.Volume{Name: "../x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	if _, err := e.m.Setup(context.Background(), pod); err == nil || !strings.Contains(err.Error(), `invalid volume name "../x"`) {
		t.Errorf("volume name: %v", err)
	}
	pod.UID = "a/b"
	if _, err := e.m.Setup(context.Background(), pod); err == nil || !strings.Contains(err.Error(), `invalid pod UID "a/b"`) {
		t.Errorf("pod UID: %v", err)
	}
}

func TestCleanup(t *testing.T) {
	ca := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "ns"}, Data: map[string]string{"ca.crt": "CA"}}
	e := newEnv(t, ca)
	pod := newPod(kubeAPIAccess(3600),
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}}})
	e.setup(t, pod)
	// Another pod's token must survive.
	other := newPod(kubeAPIAccess(3600))
	other.UID = "uid-2"
	e.setup(t, other)

	if err := e.m.Cleanup("uid-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "uid-1")); !os.IsNotExist(err) {
		t.Errorf("pod dir left: %v", err)
	}
	if len(e.mnt.unmounted) != 2 {
		t.Errorf("unmounted %v, want the projected and memory volumes", e.mnt.unmounted)
	}
	if _, ok := e.m.NextRefresh("uid-1"); ok {
		t.Error("token of cleaned-up pod still cached")
	}
	if _, ok := e.m.NextRefresh("uid-2"); !ok {
		t.Error("token of another pod forgotten")
	}
	if _, err := os.Stat(filepath.Join(e.root, "uid-2")); err != nil {
		t.Errorf("other pod's dir: %v", err)
	}
	if err := e.m.Cleanup("uid-1"); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

// TestRealTmpfs mounts for real where the test may (as root, with the
// capability), to check the mounter, sizing and unmount on Cleanup.
func TestRealTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"k": []byte("v")}}
	e := newEnv(t, sec)
	e.m.mount = hostMounter{}
	probe := t.TempDir()
	if err := (hostMounter{}).MountTmpfs(probe, 1<<20); err != nil {
		t.Skipf("cannot mount here: %v", err)
	}
	if err := (hostMounter{}).Unmount(probe); err != nil {
		t.Fatal(err)
	}
	pod := newPod(corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}})
	t.Cleanup(func() { (hostMounter{}).Unmount(e.dir(pluginSecret, "s")) })
	e.setup(t, pod)
	dir := e.dir(pluginSecret, "s")
	if mounted, err := (hostMounter{}).IsMountpoint(dir); err != nil || !mounted {
		t.Fatalf("secret volume not a mount point: %v %v", mounted, err)
	}
	same(t, "secret", files(t, dir), map[string]string{"k": `"v" 0644`})
	e.setup(t, pod) // must not stack a second tmpfs
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if n := strings.Count(string(mounts), " "+dir+" "); n != 1 {
		t.Errorf("%d mounts at %s, want 1", n, dir)
	}
	if err := e.m.Cleanup("uid-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "uid-1")); !os.IsNotExist(err) {
		t.Errorf("pod dir left: %v", err)
	}
}

func TestCleanupRefusesForeignMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	e := newEnv(t)
	e.m.mount = hostMounter{}
	pod := newPod(corev1.Volume{Name: "d", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	e.setup(t, pod)
	// Something mounted below a volume, as a bidirectional mount would leave.
	inner := filepath.Join(e.dir(pluginEmptyDir, "d"), "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (hostMounter{}).MountTmpfs(inner, 1<<20); err != nil {
		t.Skipf("cannot mount here: %v", err)
	}
	defer (hostMounter{}).Unmount(inner)
	keep := filepath.Join(inner, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Cleanup("uid-1"); err == nil || !strings.Contains(err.Error(), "is a mount point") {
		t.Errorf("Cleanup over a foreign mount: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("content of the foreign mount removed: %v", err)
	}
}

// With an fsGroup the kubelet gives the pod's volumes to that group: the
// emptyDir passes it on (setgid), content files are group-readable even
// when their mode says owner-only, and the token belongs to the pod's single
// runAsUser with mode 0600 (0640 with the group).
func TestFSGroupOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	ca := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "ns"}, Data: map[string]string{"ca.crt": "CA"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"key": []byte("v")}}
	owner := func(t *testing.T, p string) string {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("%d:%d %v", st.Uid, st.Gid, fi.Mode())
	}
	vols := []corev1.Volume{
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec", DefaultMode: ptr[int32](0o400)}}},
		kubeAPIAccess(3607),
	}
	for _, tc := range []struct {
		name                           string
		sc                             *corev1.PodSecurityContext
		scratch, secret, token, tokDir string
	}{
		{"no fsGroup: as set up, root's", nil,
			"0:0 drwxrwxrwx", "0:0 -r--------", "0:0 -rw-r--r--", "0:0 drwxr-xr-x"},
		{"fsGroup", &corev1.PodSecurityContext{FSGroup: ptr[int64](2000)},
			"0:2000 dgrwxrwxrwx", "0:2000 -r--r-----", "0:2000 -rw-r-----", "0:2000 dgrwxr-xr-x"},
		{"fsGroup and one runAsUser", &corev1.PodSecurityContext{FSGroup: ptr[int64](2000), RunAsUser: ptr[int64](1000)},
			"0:2000 dgrwxrwxrwx", "0:2000 -r--r-----", "1000:2000 -rw-r-----", "0:2000 dgrwxr-xr-x"},
		{"one runAsUser without fsGroup", &corev1.PodSecurityContext{RunAsUser: ptr[int64](1000)},
			"0:0 drwxrwxrwx", "0:0 -r--------", "1000:0 -rw-------", "0:0 drwxr-xr-x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ca, sec)
			pod := newPod(vols...)
			pod.Spec.SecurityContext = tc.sc
			e.setup(t, pod)
			tokens := e.dir(pluginProjected, "kube-api-access-x")
			for _, c := range []struct{ what, path, want string }{
				{"emptyDir", e.dir(pluginEmptyDir, "scratch"), tc.scratch},
				{"secret file", filepath.Join(e.dir(pluginSecret, "creds"), "key"), tc.secret},
				{"token", filepath.Join(tokens, "token"), tc.token},
				{"content directory", filepath.Join(tokens, "..data") + "/", tc.tokDir},
			} {
				if got := owner(t, c.path); got != c.want {
					t.Errorf("%s: %s, want %s", c.what, got, c.want)
				}
			}
		})
	}
	// A second container running as someone else: no single fsUser.
	pod := newPod()
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr[int64](1000)}
	pod.Spec.InitContainers = []corev1.Container{{Name: "i", SecurityContext: &corev1.SecurityContext{RunAsUser: ptr[int64](0)}}}
	if u := fsUser(pod); u != nil {
		t.Errorf("fsUser of containers running as 1000 and 0: %d", *u)
	}
	pod.Spec.InitContainers[0].SecurityContext.RunAsUser = ptr[int64](1000)
	if u := fsUser(pod); u == nil || *u != 1000 {
		t.Errorf("fsUser of containers all running as 1000: %v", u)
	}
}
