package pods

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
)

func TestStaticPodFromManifest(t *testing.T) {
	manifest := []byte(`apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: c, image: busybox:1.35}, {name: d, image: busybox}]
`)
	p, err := staticPodFromManifest(manifest, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "web-node-a" || p.Namespace != "default" || p.Spec.NodeName != "node-a" || p.UID == "" ||
		p.Annotations[annotationHash] != string(p.UID) || p.Annotations[annotationSource] != "file" {
		t.Errorf("identity: %s/%s node %s uid %s annotations %v", p.Namespace, p.Name, p.Spec.NodeName, p.UID, p.Annotations)
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyAlways || p.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent ||
		p.Spec.Containers[1].ImagePullPolicy != corev1.PullAlways || p.Spec.Containers[0].TerminationMessagePath != "/dev/termination-log" {
		t.Errorf("defaults: %+v", p.Spec)
	}
	last := p.Spec.Tolerations[len(p.Spec.Tolerations)-1]
	if last.Operator != corev1.TolerationOpExists || last.Effect != corev1.TaintEffectNoExecute {
		t.Errorf("no NoExecute toleration: %v", p.Spec.Tolerations)
	}
	// The UID follows the content and the node: same file, same UID (a
	// restarted agent adopts the containers); an edit or another node, another.
	again, _ := staticPodFromManifest(manifest, "node-a")
	other, _ := staticPodFromManifest(manifest, "node-b")
	edited, _ := staticPodFromManifest(append(manifest, []byte("  hostNetwork: true\n")...), "node-a")
	if again.UID != p.UID || other.UID == p.UID || edited.UID == p.UID {
		t.Errorf("UIDs: same %s/%s, other node %s, edited %s", p.UID, again.UID, other.UID, edited.UID)
	}
	for name, bad := range map[string]string{
		"not a pod":     "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
		"no name":       "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i}]}\n",
		"no containers": "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
		"garbage":       "{{{",
	} {
		if _, err := staticPodFromManifest([]byte(bad), "n"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A new manifest starts its pod; an edited one stops the old pod before the
// new one starts; a removed one stops its pod.
func TestReconcileStatic(t *testing.T) {
	m := &Manager{manifests: map[string]map[string]*corev1.Pod{}, static: map[string]map[string]*corev1.Pod{}, staticRemoved: map[string]*corev1.Pod{}}
	pod := func(uid string) *corev1.Pod { p := &corev1.Pod{}; p.UID = k8stypes.UID("u" + uid); return p }
	m.manifests["n"] = map[string]*corev1.Pod{"default/a": pod("1")}
	if got := m.reconcileStatic("n"); len(got) != 1 || m.static["n"]["default/a"].UID != "u1" {
		t.Fatalf("new: %v %v", got, m.static["n"])
	}
	m.manifests["n"] = map[string]*corev1.Pod{"default/a": pod("2")}
	m.reconcileStatic("n")
	if m.static["n"]["default/a"] != nil || m.staticRemoved["default/a"].UID != "u1" {
		t.Fatalf("edited: the old pod must stop first: running %v stopping %v", m.static["n"], m.staticRemoved)
	}
	delete(m.staticRemoved, "default/a") // removeStatic finished
	m.reconcileStatic("n")
	if m.static["n"]["default/a"].UID != "u2" {
		t.Fatalf("edited: the new pod must start after: %v", m.static["n"])
	}
	m.manifests["n"] = map[string]*corev1.Pod{}
	if got := m.reconcileStatic("n"); len(got) != 1 || len(m.static["n"]) != 0 || m.staticRemoved["default/a"].UID != "u2" {
		t.Fatalf("removed: %v %v %v", got, m.static["n"], m.staticRemoved)
	}
}
