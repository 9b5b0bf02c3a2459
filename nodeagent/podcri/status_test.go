package podcri

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestComputeStatus(t *testing.T) {
	now := metav1.NewTime(time.Unix(1000, 0))
	running := func(id string) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{Id: id, State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: 900e9, ImageRef: "sha256:img"}
	}
	exited := func(id string, code int32) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{Id: id, State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: code, StartedAt: 900e9, FinishedAt: 950e9}
	}
	sandbox := &runtimeapi.PodSandboxStatus{State: runtimeapi.PodSandboxState_SANDBOX_READY, Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.128.0.7"}}
	always := corev1.ContainerRestartPolicyAlways
	pod := func(policy corev1.RestartPolicy, inits ...corev1.Container) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: policy, InitContainers: inits,
			Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
			Status: corev1.PodStatus{QOSClass: corev1.PodQOSBestEffort, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}}}
	}
	for _, tc := range []struct {
		name       string
		pod        *corev1.Pod
		sb         *runtimeapi.PodSandboxStatus
		containers map[string][]*runtimeapi.ContainerStatus
		phase      corev1.PodPhase
		ready      bool
		initDone   bool
	}{
		{"nothing created yet", pod(corev1.RestartPolicyAlways), nil, nil, corev1.PodPending, false, true},
		{"app running", pod(corev1.RestartPolicyAlways), sandbox, map[string][]*runtimeapi.ContainerStatus{"app": {running("a")}}, corev1.PodRunning, true, true},
		{"init done, app running", pod(corev1.RestartPolicyAlways, corev1.Container{Name: "init"}), sandbox,
			map[string][]*runtimeapi.ContainerStatus{"init": {exited("i", 0)}, "app": {running("a")}}, corev1.PodRunning, true, true},
		{"init failed, restart Never: the pod fails", pod(corev1.RestartPolicyNever, corev1.Container{Name: "init"}), sandbox,
			map[string][]*runtimeapi.ContainerStatus{"init": {exited("i", 1)}}, corev1.PodFailed, false, false},
		{"init failed, restart Always: pending its restart", pod(corev1.RestartPolicyAlways, corev1.Container{Name: "init"}), sandbox,
			map[string][]*runtimeapi.ContainerStatus{"init": {exited("i", 1)}}, corev1.PodPending, false, false},
		{"sidecar running counts as initialized", pod(corev1.RestartPolicyAlways, corev1.Container{Name: "side", RestartPolicy: &always}), sandbox,
			map[string][]*runtimeapi.ContainerStatus{"side": {running("s")}, "app": {running("a")}}, corev1.PodRunning, true, true},
		{"app succeeded, restart Never", pod(corev1.RestartPolicyNever), sandbox, map[string][]*runtimeapi.ContainerStatus{"app": {exited("a", 0)}}, corev1.PodSucceeded, false, true},
		{"app failed, restart Never", pod(corev1.RestartPolicyNever), sandbox, map[string][]*runtimeapi.ContainerStatus{"app": {exited("a", 2)}}, corev1.PodFailed, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := ComputeStatus(tc.pod, "192.0.2.10", "containerd", tc.sb, tc.containers, nil, nil, nil, now)
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			cond := map[corev1.PodConditionType]corev1.ConditionStatus{}
			for _, c := range st.Conditions {
				cond[c.Type] = c.Status
			}
			if (cond[corev1.PodReady] == corev1.ConditionTrue) != tc.ready || (cond[corev1.ContainersReady] == corev1.ConditionTrue) != tc.ready {
				t.Errorf("Ready/ContainersReady = %s/%s, want ready=%v", cond[corev1.PodReady], cond[corev1.ContainersReady], tc.ready)
			}
			if (cond[corev1.PodInitialized] == corev1.ConditionTrue) != tc.initDone {
				t.Errorf("Initialized = %s, want %v", cond[corev1.PodInitialized], tc.initDone)
			}
			if cond[corev1.PodScheduled] != corev1.ConditionTrue || st.QOSClass != corev1.PodQOSBestEffort || st.HostIP != "192.0.2.10" {
				t.Errorf("PodScheduled, qosClass and hostIP must be kept: %+v", st)
			}
			if tc.sb != nil && st.PodIP != "10.128.0.7" {
				t.Errorf("podIP %q", st.PodIP)
			}
			if cs := st.ContainerStatuses[0]; tc.containers["app"] != nil && (cs.ContainerID == "" || cs.RestartCount != 0) {
				t.Errorf("container status %+v", cs)
			}
		})
	}
	// Recomputing with nothing changed yields the same status: no write.
	p := pod(corev1.RestartPolicyAlways)
	cs := map[string][]*runtimeapi.ContainerStatus{"app": {running("a")}}
	p.Status = ComputeStatus(p, "192.0.2.10", "containerd", sandbox, cs, nil, nil, nil, now)
	again := ComputeStatus(p, "192.0.2.10", "containerd", sandbox, cs, nil, nil, nil, metav1.NewTime(now.Add(time.Minute)))
	for i := range again.Conditions {
		if !again.Conditions[i].LastTransitionTime.Equal(&p.Status.Conditions[i].LastTransitionTime) {
			t.Errorf("condition %s moved its transition time without a transition", again.Conditions[i].Type)
		}
	}
}

// A container waiting for its restart back-off shows CrashLoopBackOff, its
// last exit as lastState and the restart count from the attempt number; the
// pod stays Running but not Ready.
func TestCrashLoopStatus(t *testing.T) {
	now := metav1.NewTime(time.Unix(1000, 0))
	exited := func(id string, attempt uint32) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: attempt},
			State: runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: 1, StartedAt: 900e9, FinishedAt: 901e9}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "app"}}}}
	sb := &runtimeapi.PodSandboxStatus{State: runtimeapi.PodSandboxState_SANDBOX_READY}
	st := ComputeStatus(pod, "", "containerd", sb, map[string][]*runtimeapi.ContainerStatus{"app": {exited("b", 3), exited("a", 2)}},
		map[string]corev1.ContainerStateWaiting{"app": {Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}}, nil, nil, now)
	cs := st.ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount != 3 ||
		cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 || cs.Ready {
		t.Errorf("container status %+v", cs)
	}
	if st.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running while crash-looping", st.Phase)
	}
}

// Exited containers: the runtime's reason wins over the exit code's
// (StartError for a command that does not exist, OOMKilled), the
// termination message over the runtime's message; a container not started
// shows why it waits (RunContainerError, ErrImageNeverPull, ...).
func TestTerminatedAndWaitingStates(t *testing.T) {
	exited := func(id string, code int32, reason, message string) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, State: runtimeapi.ContainerState_CONTAINER_EXITED,
			ExitCode: code, Reason: reason, Message: message}
	}
	tests := []struct {
		name     string
		history  []*runtimeapi.ContainerStatus
		wait     corev1.ContainerStateWaiting
		messages map[string]string
		want     string // reason/exit/message of terminated, or waiting reason/message
	}{
		{"completed", []*runtimeapi.ContainerStatus{exited("a", 0, "", "")}, corev1.ContainerStateWaiting{}, nil, "terminated Completed 0 "},
		{"error", []*runtimeapi.ContainerStatus{exited("a", 2, "", "")}, corev1.ContainerStateWaiting{}, nil, "terminated Error 2 "},
		{"start error from the runtime", []*runtimeapi.ContainerStatus{exited("a", 128, "StartError", "exec: \"nope\": executable file not found in $PATH")}, corev1.ContainerStateWaiting{}, nil,
			"terminated StartError 128 exec: \"nope\": executable file not found in $PATH"},
		{"oom", []*runtimeapi.ContainerStatus{exited("a", 137, "OOMKilled", "")}, corev1.ContainerStateWaiting{}, nil, "terminated OOMKilled 137 "},
		{"termination message wins", []*runtimeapi.ContainerStatus{exited("a", 1, "", "runtime says")}, corev1.ContainerStateWaiting{}, map[string]string{"a": "bye\n"}, "terminated Error 1 bye\n"},
		{"not created: why it waits", nil, corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "not present"}, nil, "waiting ErrImageNeverPull not present"},
		{"created, start failed", []*runtimeapi.ContainerStatus{{Id: "a", Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, State: runtimeapi.ContainerState_CONTAINER_CREATED}},
			corev1.ContainerStateWaiting{Reason: "RunContainerError", Message: "boom"}, nil, "waiting RunContainerError boom"},
		{"not created, nothing wrong", nil, corev1.ContainerStateWaiting{}, nil, "waiting ContainerCreating "},
	}
	for _, tt := range tests {
		cs := containerStatus(corev1.Container{Name: "app"}, "containerd", tt.history, tt.wait, tt.messages, nil, "ContainerCreating")
		got := ""
		switch {
		case cs.State.Terminated != nil:
			got = fmt.Sprintf("terminated %s %d %s", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode, cs.State.Terminated.Message)
		case cs.State.Waiting != nil:
			got = "waiting " + cs.State.Waiting.Reason + " " + cs.State.Waiting.Message
		}
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// Probes decide started and ready: a container whose readiness probe has
// not passed keeps the pod out of Ready; one before its startup probe
// passed is neither started nor ready, and a sidecar in that state holds
// initialization.
func TestProbedStatus(t *testing.T) {
	now := metav1.NewTime(time.Unix(1000, 0))
	running := func(id, name string) *runtimeapi.ContainerStatus {
		return &runtimeapi.ContainerStatus{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: name}, State: runtimeapi.ContainerState_CONTAINER_RUNNING}
	}
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "side", RestartPolicy: &always}}, Containers: []corev1.Container{{Name: "app"}}}}
	sb := &runtimeapi.PodSandboxStatus{State: runtimeapi.PodSandboxState_SANDBOX_READY}
	cs := map[string][]*runtimeapi.ContainerStatus{"side": {running("s", "side")}, "app": {running("a", "app")}}
	tests := []struct {
		name                  string
		probed                map[string]ProbeState
		appStarted, appReady  bool
		initialized, podReady bool
	}{
		{"no probes", nil, true, true, true, true},
		{"readiness not passed", map[string]ProbeState{"a": {Started: true}}, true, false, true, false},
		{"startup not passed", map[string]ProbeState{"a": {}}, false, false, true, false},
		{"sidecar before its startup probe", map[string]ProbeState{"s": {}}, true, true, false, false},
	}
	for _, tt := range tests {
		st := ComputeStatus(pod, "", "containerd", sb, cs, nil, nil, tt.probed, now)
		app := st.ContainerStatuses[0]
		cond := map[corev1.PodConditionType]bool{}
		for _, c := range st.Conditions {
			cond[c.Type] = c.Status == corev1.ConditionTrue
		}
		if *app.Started != tt.appStarted || app.Ready != tt.appReady || cond[corev1.PodInitialized] != tt.initialized || cond[corev1.PodReady] != tt.podReady {
			t.Errorf("%s: started %v ready %v initialized %v podReady %v", tt.name, *app.Started, app.Ready, cond[corev1.PodInitialized], cond[corev1.PodReady])
		}
	}
}

// Ephemeral containers get their own statuses and never count for readiness.
func TestEphemeralStatus(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg"}}}}}
	sb := &runtimeapi.PodSandboxStatus{State: runtimeapi.PodSandboxState_SANDBOX_READY}
	cs := map[string][]*runtimeapi.ContainerStatus{
		"app": {{Id: "a", Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING}},
		"dbg": {{Id: "d", Metadata: &runtimeapi.ContainerMetadata{Name: "dbg"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING}},
	}
	st := ComputeStatus(pod, "", "containerd", sb, cs, nil, nil, nil, metav1.NewTime(time.Unix(1000, 0)))
	if len(st.EphemeralContainerStatuses) != 1 || st.EphemeralContainerStatuses[0].State.Running == nil || st.EphemeralContainerStatuses[0].Ready {
		t.Errorf("ephemeral statuses %+v", st.EphemeralContainerStatuses)
	}
	if len(st.ContainerStatuses) != 1 || !st.ContainerStatuses[0].Ready || st.Phase != corev1.PodRunning {
		t.Errorf("app status %+v phase %s", st.ContainerStatuses, st.Phase)
	}
}

// A host-network pod reports the node's IP as its own.
func TestHostNetworkPodIP(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "app"}}}}
	sb := &runtimeapi.PodSandboxStatus{State: runtimeapi.PodSandboxState_SANDBOX_READY}
	st := ComputeStatus(pod, "192.0.2.10", "containerd", sb, nil, nil, nil, nil, metav1.NewTime(time.Unix(1000, 0)))
	if st.PodIP != "192.0.2.10" || len(st.PodIPs) != 1 || st.PodIPs[0].IP != "192.0.2.10" {
		t.Errorf("podIP %q podIPs %v", st.PodIP, st.PodIPs)
	}
	pod.Spec.HostNetwork = false
	if st := ComputeStatus(pod, "192.0.2.10", "containerd", sb, nil, nil, nil, nil, metav1.NewTime(time.Unix(1000, 0))); st.PodIP != "" {
		t.Errorf("pod network without an address got %q", st.PodIP)
	}
}

// The kubelet's Ready with readiness gates, its condition messages, the
// conditions it leaves to others, and the generation it observed.
func TestReadinessGatesAndForeignConditions(t *testing.T) {
	now := metav1.NewTime(time.Unix(1000, 0))
	sb := &runtimeapi.PodSandboxStatus{State: runtimeapi.PodSandboxState_SANDBOX_READY, Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.128.0.7"}}
	running := map[string][]*runtimeapi.ContainerStatus{"app": {{Id: "a", State: runtimeapi.ContainerState_CONTAINER_RUNNING}}}
	gate := corev1.PodConditionType("example.com/lb-ready")
	base := func(conds ...corev1.PodCondition) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Generation: 3},
			Spec:   corev1.PodSpec{ReadinessGates: []corev1.PodReadinessGate{{ConditionType: gate}}, Containers: []corev1.Container{{Name: "app"}, {Name: "web"}}},
			Status: corev1.PodStatus{Conditions: conds}}
	}
	find := func(st corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
		for i := range st.Conditions {
			if st.Conditions[i].Type == t {
				return &st.Conditions[i]
			}
		}
		return nil
	}
	// web is not running: ContainersReady and Ready say which containers.
	st := ComputeStatus(base(), "", "containerd", sb, running, nil, nil, nil, now)
	if c := find(st, corev1.PodReady); c.Reason != "ContainersNotReady" || c.Message != "containers with unready status: [web]" {
		t.Errorf("Ready %+v", c)
	}
	if c := find(st, corev1.ContainersReady); c.Message != "containers with unready status: [web]" || c.ObservedGeneration != 3 {
		t.Errorf("ContainersReady %+v", c)
	}
	if st.ObservedGeneration != 3 {
		t.Errorf("observedGeneration %d, want 3", st.ObservedGeneration)
	}
	running["web"] = running["app"]
	for _, tc := range []struct {
		name    string
		conds   []corev1.PodCondition
		ready   corev1.ConditionStatus
		message string
	}{
		{"gate condition missing", nil, corev1.ConditionFalse, `corresponding condition of pod readiness gate "example.com/lb-ready" does not exist.`},
		{"gate False", []corev1.PodCondition{{Type: gate, Status: corev1.ConditionFalse}}, corev1.ConditionFalse,
			`the status of pod readiness gate "example.com/lb-ready" is not "True", but False`},
		{"gate True", []corev1.PodCondition{{Type: gate, Status: corev1.ConditionTrue}}, corev1.ConditionTrue, ""},
	} {
		st := ComputeStatus(base(tc.conds...), "", "containerd", sb, running, nil, nil, nil, now)
		c := find(st, corev1.PodReady)
		if c.Status != tc.ready || c.Message != tc.message || (tc.ready == corev1.ConditionFalse && c.Reason != "ReadinessGatesNotReady") {
			t.Errorf("%s: Ready %+v", tc.name, c)
		}
		if c := find(st, corev1.ContainersReady); c.Status != corev1.ConditionTrue {
			t.Errorf("%s: ContainersReady %+v: gates do not hold containers back", tc.name, c)
		}
	}
	// Others' conditions survive the agent's status writes; its own are recomputed.
	p := base(corev1.PodCondition{Type: gate, Status: corev1.ConditionTrue}, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "PreemptionByScheduler"},
		corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "stale"})
	st = ComputeStatus(p, "", "containerd", sb, running, nil, nil, nil, now)
	if c := find(st, corev1.DisruptionTarget); c == nil || c.Reason != "PreemptionByScheduler" {
		t.Errorf("DisruptionTarget lost: %+v", st.Conditions)
	}
	if find(st, gate) == nil || find(st, corev1.PodScheduled) == nil {
		t.Errorf("gate or PodScheduled condition lost: %+v", st.Conditions)
	}
	if c := find(st, corev1.PodReady); c.Status != corev1.ConditionTrue {
		t.Errorf("stale Ready kept: %+v", c)
	}
	if len(st.Conditions) != 7 {
		t.Errorf("%d conditions, want 4 of the agent's and 3 kept: %+v", len(st.Conditions), st.Conditions)
	}
}

// The last status of a deleted pod: nothing shown running (a container
// whose exit was not seen is ContainerStatusUnknown, 137, as the kubelet
// reports it), a terminal phase by the app containers' exits, not ready.
func TestTerminalStatus(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	exited := func(code int32) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}
	}
	waiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}
	for _, tc := range []struct {
		name       string
		init, apps []corev1.ContainerState
		phase      corev1.PodPhase
	}{
		{"all exited 0", nil, []corev1.ContainerState{exited(0), exited(0)}, corev1.PodSucceeded},
		{"one failed", nil, []corev1.ContainerState{exited(0), exited(1)}, corev1.PodFailed},
		{"still shown running", nil, []corev1.ContainerState{running}, corev1.PodFailed},
		{"init running, app never started", []corev1.ContainerState{running}, []corev1.ContainerState{waiting}, corev1.PodFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
			for _, s := range tc.init {
				st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{State: s, Ready: true})
			}
			for _, s := range tc.apps {
				st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{State: s, Ready: true})
			}
			TerminalStatus(&st)
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			for _, cs := range append(st.InitContainerStatuses, st.ContainerStatuses...) {
				if cs.State.Running != nil {
					t.Errorf("a container still running in a final status: %+v", cs)
				}
			}
			for i, s := range append(tc.init, tc.apps...) {
				cs := append(st.InitContainerStatuses, st.ContainerStatuses...)[i]
				if s.Running != nil && (cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 137 || cs.State.Terminated.Reason != "ContainerStatusUnknown" || cs.Ready) {
					t.Errorf("running container's final state %+v", cs)
				}
				if s.Waiting != nil && cs.State.Waiting == nil {
					t.Errorf("a container that never ran is no longer waiting: %+v", cs)
				}
			}
			if c := st.Conditions[0]; c.Status != corev1.ConditionFalse || c.Reason != "PodCompleted" {
				t.Errorf("Ready %+v, want False/PodCompleted", c)
			}
		})
	}
}
