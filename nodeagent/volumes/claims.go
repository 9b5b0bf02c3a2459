package volumes

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// claimVolume is a persistentVolumeClaim volume: the claim must be bound,
// its PersistentVolume bound back to it, and the volume one the node can
// use without a driver: hostPath, or local on this node (its node affinity
// says so). Local volumes get the pod's fsGroup as the kubelet's local
// plugin gives it; hostPath volumes are used as they are (the kubelet
// manages no ownership of them either). CSI and the other network or
// cloud volume types are refused with a message saying so: the agent has
// no volume drivers yet.
func (m *Manager) claimVolume(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (Volume, error) {
	src := v.PersistentVolumeClaim
	pvc, err := m.client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, src.ClaimName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Volume{}, fmt.Errorf("persistentvolumeclaim %q not found", src.ClaimName)
	}
	if err != nil {
		return Volume{}, err
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return Volume{}, fmt.Errorf("error processing PVC %s/%s: PVC is not bound", pod.Namespace, pvc.Name)
	}
	pv, err := m.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return Volume{}, fmt.Errorf("error processing PVC %s/%s: %w", pod.Namespace, pvc.Name, err)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID {
		return Volume{}, fmt.Errorf("error processing PVC %s/%s: PersistentVolume %s is not bound to it", pod.Namespace, pvc.Name, pv.Name)
	}
	readOnly := src.ReadOnly
	switch s := pv.Spec.PersistentVolumeSource; {
	case s.HostPath != nil:
		if err := checkHostPath(s.HostPath.Path, s.HostPath.Type); err != nil {
			return Volume{}, err
		}
		return Volume{HostPath: s.HostPath.Path, ReadOnly: readOnly}, nil
	case s.Local != nil:
		if err := m.onThisNode(ctx, pod.Spec.NodeName, pv); err != nil {
			return Volume{}, err
		}
		fi, err := os.Stat(s.Local.Path)
		if err != nil {
			return Volume{}, fmt.Errorf("local volume %s: %w", pv.Name, err)
		}
		if gid := fsGroup(pod); gid != nil && fi.IsDir() && !readOnly {
			if err := ownTree(s.Local.Path, *gid); err != nil {
				return Volume{}, fmt.Errorf("local volume %s: applying fsGroup: %w", pv.Name, err)
			}
		}
		return Volume{HostPath: s.Local.Path, ReadOnly: readOnly}, nil
	}
	return Volume{}, fmt.Errorf("PersistentVolume %s is of a type kubeparts-nodeagent does not support yet (only hostPath and local; CSI and other drivers are not implemented)", pv.Name)
}

// onThisNode checks a local PersistentVolume's node affinity against this node.
func (m *Manager) onThisNode(ctx context.Context, nodeName string, pv *corev1.PersistentVolume) error {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return nil
	}
	node, err := m.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if ok, err := nodeaffinity.NewLazyErrorNodeSelector(pv.Spec.NodeAffinity.Required).Match(node); err != nil || !ok {
		return fmt.Errorf("local volume %s: its node affinity does not match node %s", pv.Name, nodeName)
	}
	return nil
}

// ownTree gives a volume's tree to group gid as the kubelet's volume
// ownership does: group-owned, group-readable and writable, directories
// setgid so new files stay in the group. A root already owned so is left
// as it is (fsGroupChangePolicy OnRootMismatch; with Always the kubelet
// walks the tree on each mount, here on the first only, since the volume
// is set up again on every sync).
func ownTree(root string, gid int64) error {
	if fi, err := os.Stat(root); err == nil && statGID(fi) == gid && fi.Mode()&fs.ModeSetgid != 0 {
		return nil
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Lchown(path, -1, int(gid)); err != nil {
			return err
		}
		mode := fi.Mode().Perm() | 0o060
		if d.IsDir() {
			mode |= 0o010 | fs.ModeSetgid
		}
		return os.Chmod(path, mode)
	})
}
