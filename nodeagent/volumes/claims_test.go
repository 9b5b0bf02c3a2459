package volumes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

func boundClaim(name, volume string) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: volume}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: volume},
		Spec: corev1.PersistentVolumeSpec{ClaimRef: &corev1.ObjectReference{Namespace: "ns", Name: name, UID: pvc.UID}}}
	return pvc, pv
}

// persistentVolumeClaim volumes: bound claims of hostPath and local
// volumes are mounted (a local one only on the node its affinity names);
// anything else is refused saying why.
func TestClaimVolumes(t *testing.T) {
	hostDir, localDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(localDir, "data"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelHostname: "n1"}}}
	affinity := func(host string) *corev1.VolumeNodeAffinity {
		return &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{host}}}}}}}
	}
	var objs []runtime.Object
	add := func(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume, src corev1.PersistentVolumeSource, na *corev1.VolumeNodeAffinity) {
		pv.Spec.PersistentVolumeSource, pv.Spec.NodeAffinity = src, na
		objs = append(objs, pvc, pv)
	}
	pvc, pv := boundClaim("host", "pv-host")
	add(pvc, pv, corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}, nil)
	pvc, pv = boundClaim("local", "pv-local")
	add(pvc, pv, corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: localDir}}, affinity("n1"))
	pvc, pv = boundClaim("elsewhere", "pv-elsewhere")
	add(pvc, pv, corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: localDir}}, affinity("n2"))
	pvc, pv = boundClaim("csi", "pv-csi")
	add(pvc, pv, corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "d", VolumeHandle: "h"}}, nil)
	pvc, pv = boundClaim("stolen", "pv-stolen")
	pv.Spec.ClaimRef.UID = "someone-else"
	add(pvc, pv, corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}, nil)
	pending := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pending"}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}}
	objs = append(objs, node, pending)
	e := newEnv(t, objs...)

	for _, tc := range []struct {
		claim    string
		readOnly bool
		wantPath string
		wantErr  string
	}{
		{"host", false, hostDir, ""},
		{"host", true, hostDir, ""},
		{"local", false, localDir, ""},
		{"elsewhere", false, "", "local volume pv-elsewhere: its node affinity does not match node n1"},
		{"csi", false, "", "PersistentVolume pv-csi is of a type kubeparts-nodeagent does not support yet"},
		{"stolen", false, "", "PersistentVolume pv-stolen is not bound to it"},
		{"pending", false, "", "error processing PVC ns/pending: PVC is not bound"},
		{"missing", false, "", `persistentvolumeclaim "missing" not found`},
	} {
		t.Run(tc.claim, func(t *testing.T) {
			pod := newPod(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: tc.claim, ReadOnly: tc.readOnly}}})
			pod.Spec.NodeName = "n1"
			pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr[int64](int64(os.Getgid() + 1))}
			vols, err := e.m.Setup(context.Background(), pod)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `MountVolume.SetUp failed for volume "data"`) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := vols["data"]; got.HostPath != tc.wantPath || got.ReadOnly != tc.readOnly {
				t.Errorf("volume %+v, want %s read-only %v", got, tc.wantPath, tc.readOnly)
			}
		})
	}
	// The local volume belongs to the pod's fsGroup now, group-writable.
	fi, err := os.Stat(filepath.Join(localDir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if statGID(fi) != int64(os.Getgid()+1) || fi.Mode().Perm()&0o060 != 0o060 {
		t.Errorf("local volume file: gid %d mode %v, want the fsGroup and group rw", statGID(fi), fi.Mode())
	}
}

// A memory-backed emptyDir's root keeps tmpfs' sticky bit, as under the
// kubelet (the upstream EmptyDir specs expect "dtrwxrwxrwx", and
// "dgtrwxrwxrwx" with an fsGroup).
func TestTmpfsRootMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		gid  *int64
		want os.FileMode
	}{
		{"no fsGroup", nil, 0o777 | os.ModeSticky | os.ModeDir},
		{"fsGroup", ptr[int64](123), 0o777 | os.ModeSticky | os.ModeSetgid | os.ModeDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			pod := newPod(corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
			if tc.gid != nil {
				pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: tc.gid}
			}
			vols, err := e.m.Setup(context.Background(), pod)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(vols["mem"].HostPath)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tc.want {
				t.Errorf("mode %v, want %v", fi.Mode(), tc.want)
			}
		})
	}
}
