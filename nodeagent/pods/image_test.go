package pods

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient/kubeclienttest"
)

// Image pulls as the kubelet does them: the pull policy, the stock waiting
// reasons, ImagePullBackOff between failed pulls, and the events.
func TestEnsureImage(t *testing.T) {
	images := critest.NewFakeImageService()
	images.SetFakeImages([]string{"present:1"})
	recorder := record.NewFakeRecorder(100)
	clock := time.Unix(1000, 0)
	m := &Manager{client: kubeclienttest.FromClientset(fake.NewClientset()), now: func() time.Time { return clock }}
	node := Node{Images: images, Recorder: recorder}
	pod := &corev1.Pod{}
	pod.UID = "u"
	pull := func(image string, policy corev1.PullPolicy) (string, error) {
		return m.ensureImage(context.Background(), node, pod, corev1.Container{Name: "c", Image: image, ImagePullPolicy: policy}, nil)
	}
	events := func() string {
		var out []string
		for len(recorder.Events) > 0 {
			out = append(out, <-recorder.Events)
		}
		return strings.Join(out, "|")
	}
	reason := func(err error) string {
		var we *waitError
		if errors.As(err, &we) {
			return we.reason
		}
		return ""
	}

	if _, err := pull("present:1", corev1.PullIfNotPresent); err != nil || !strings.Contains(events(), `Pulled Container image "present:1" already present on machine`) {
		t.Errorf("present image: %v", err)
	}
	if _, err := pull("absent:1", corev1.PullNever); reason(err) != "ErrImageNeverPull" || !strings.Contains(events(), "Warning ErrImageNeverPull Container image \"absent:1\" is not present with pull policy of Never") {
		t.Errorf("Never and absent: %v", err)
	}
	images.InjectError("PullImage", errors.New("dial tcp: no such host"))
	if _, err := pull("absent:1", corev1.PullIfNotPresent); reason(err) != "ErrImagePull" || !strings.Contains(events(), `Warning Failed Failed to pull image "absent:1": dial tcp: no such host`) {
		t.Errorf("failed pull: %v", err)
	}
	clock = clock.Add(5 * time.Second)
	if _, err := pull("absent:1", corev1.PullIfNotPresent); reason(err) != "ImagePullBackOff" || !strings.Contains(events(), `Back-off pulling image "absent:1"`) {
		t.Errorf("retry within the back-off: %v", err)
	}
	clock = clock.Add(10 * time.Second)
	if ref, err := pull("absent:1", corev1.PullIfNotPresent); err != nil || ref != "absent:1" || !strings.Contains(events(), `Pulling Pulling image "absent:1"`) {
		t.Errorf("pull after the back-off: %q %v", ref, err)
	}
	before := len(images.Called)
	if _, err := pull("present:1", corev1.PullAlways); err != nil || !strings.Contains(strings.Join(images.Called[before:], ","), "PullImage") {
		t.Errorf("Always pulls even a present image: %v %v", err, images.Called[before:])
	}
}
