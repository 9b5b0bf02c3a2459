package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels the pod manager puts on sandboxes and containers (the kubelet's).
const (
	labelUID       = "io.kubernetes.pod.uid"
	labelContainer = "io.kubernetes.container.name"
)

// httpError is an error with the status the client gets.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func writeError(w http.ResponseWriter, err error) {
	if he, ok := err.(*httpError); ok {
		http.Error(w, he.msg, he.code)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// containerHistory returns the pod's containers of that name, newest attempt
// first, across its sandboxes (the newest sandbox first).
func (s *Server) containerHistory(ctx context.Context, pod *corev1.Pod, name string) ([]*runtimeapi.ContainerStatus, error) {
	list, err := s.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{labelUID: string(pod.UID), labelContainer: name}})
	if err != nil {
		return nil, err
	}
	var out []*runtimeapi.ContainerStatus
	for _, c := range list {
		st, err := s.cfg.Runtime.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, st.GetStatus())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetMetadata().GetAttempt() != out[j].GetMetadata().GetAttempt() {
			return out[i].GetMetadata().GetAttempt() > out[j].GetMetadata().GetAttempt()
		}
		return out[i].CreatedAt > out[j].CreatedAt
	})
	return out, nil
}

// container resolves the container a request names: the running (or last)
// one, or with previous the one before it, with the kubelet's error texts.
func (s *Server) container(ctx context.Context, pod *corev1.Pod, name string, previous bool) (*runtimeapi.ContainerStatus, error) {
	if !hasContainer(pod, name) {
		return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name)}
	}
	history, err := s.containerHistory(ctx, pod, name)
	if err != nil {
		return nil, err
	}
	i := 0
	if previous {
		i = 1
	}
	if len(history) <= i {
		if previous {
			return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("previous terminated container %q in pod %q not found", name, pod.Name)}
		}
		return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", name, pod.Name)}
	}
	return history[i], nil
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// servePods lists the pods bound to this node, as the kubelet's /pods does.
func (s *Server) servePods(w http.ResponseWriter, _ *http.Request) {
	all, err := s.cfg.Pods.List(labels.Everything())
	if err != nil {
		writeError(w, err)
		return
	}
	list := corev1.PodList{}
	list.Kind, list.APIVersion = "PodList", "v1"
	for _, p := range all {
		if p.Spec.NodeName == s.cfg.NodeName {
			list.Items = append(list.Items, *p)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}
