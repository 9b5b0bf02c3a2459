package nodeagent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/kubeparts/kubeparts/nodeagent/pods"
)

// A KubeletConfiguration file (--config, kubelet.config.k8s.io/v1beta1,
// the kubelet's own format) sets the agent's flags, as the kubelet reads
// it: a flag given on the command line wins over the file. Every field of
// the format is known here and falls in one of three kinds:
//
//   - configFields: what the agent implements, each turned into its flag
//     (so it is validated as the flag is);
//   - tuningFields: cadences, limits and debugging switches of machinery
//     the agent does not have or runs at fixed settings; accepted whatever
//     their value, so kubeadm's and kind's files (which write most of them,
//     as zero values) work unchanged;
//   - every other field asks for a behaviour the agent lacks: accepted
//     only at its default (zero, or a value in defaultOnly), else refused
//     naming the field, never ignored silently.
//
// A field the format does not have is refused too (a typo must not pass).

const (
	kubeletConfigGroupVersion = "kubelet.config.k8s.io/v1beta1"
	kubeletConfigKind         = "KubeletConfiguration"
)

// configField turns one field's value into flag settings.
type configField func(v any) ([]flagSetting, error)

type flagSetting struct{ flag, value string }

func toFlag(flag string) configField {
	return func(v any) ([]flagSetting, error) {
		s, err := scalar(v)
		return []flagSetting{{flag, s}}, err
	}
}

// configFields are the fields the agent implements.
var configFields = map[string]configField{
	"staticPodPath":      toFlag("pod-manifest-path"),
	"podLogsDir":         toFlag("pod-log-dir"),
	"address":            toFlag("address"),
	"port":               toFlag("port"),
	"tlsCertFile":        toFlag("tls-cert-file"),
	"tlsPrivateKeyFile":  toFlag("tls-private-key-file"),
	"rotateCertificates": toFlag("rotate-certificates"),
	"serverTLSBootstrap": toFlag("rotate-server-certificates"),
	"healthzPort":        toFlag("healthz-port"),
	"healthzBindAddress": toFlag("healthz-bind-address"),
	"clusterDomain":      toFlag("cluster-domain"),
	"clusterDNS":         toFlag("cluster-dns"),
	"resolvConf":         toFlag("resolv-conf"),
	// The kubelet's pods go to <cgroupRoot>/kubepods (cgroupsPerQOS); the agent's
	// --cgroup-parent names that cgroup itself.
	"cgroupRoot": func(v any) ([]flagSetting, error) {
		s, err := scalar(v)
		return []flagSetting{{"cgroup-parent", path.Join("/", s, "kubepods")}}, err
	},
	"cgroupDriver": func(v any) ([]flagSetting, error) {
		if s, _ := v.(string); s != pods.CgroupDriverCgroupfs && s != pods.CgroupDriverSystemd {
			return nil, fmt.Errorf("%s: want cgroupfs or systemd", jsonText(v))
		}
		return toFlag("cgroup-driver")(v)
	},
	"maxPods":                  toFlag("max-pods"),
	"containerLogMaxSize":      toFlag("container-log-max-size"),
	"containerLogMaxFiles":     toFlag("container-log-max-files"),
	"seccompDefault":           toFlag("seccomp-default"),
	"allowedUnsafeSysctls":     toFlag("allowed-unsafe-sysctls"),
	"providerID":               toFlag("provider-id"),
	"containerRuntimeEndpoint": toFlag("container-runtime-endpoint"),
	"systemReserved":           pairsFlag("system-reserved", "="),
	"kubeReserved":             pairsFlag("kube-reserved", "="),
	"evictionHard":             pairsFlag("eviction-hard", "<"),
	"enableServer": func(v any) ([]flagSetting, error) {
		if b, ok := v.(bool); ok && !b {
			return []flagSetting{{"port", "0"}}, nil // no kubelet API
		}
		return nil, nil
	},
	"readOnlyPort":           only("the read-only port is not served (as kubeadm configures the kubelet)", float64(0)),
	"registerNode":           only("the agent always registers its Node", true),
	"cgroupsPerQOS":          only("pods always run in per-QoS cgroups", true),
	"enforceNodeAllocatable": only("only the pods' cgroup is bounded", []any{"pods"}, []any{}, []any{"none"}),
	"memorySwap": func(v any) ([]flagSetting, error) {
		if m, ok := v.(map[string]any); ok && (m["swapBehavior"] == nil || m["swapBehavior"] == "" || m["swapBehavior"] == "NoSwap") {
			return nil, nil
		}
		return nil, fmt.Errorf("swap for pods is not supported (swapBehavior NoSwap only)")
	},
	"registerWithTaints": func(v any) ([]flagSetting, error) {
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("want a list of taints")
		}
		var taints []string
		for _, t := range list {
			m, ok := t.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("want a list of taints")
			}
			key, _ := m["key"].(string)
			value, _ := m["value"].(string)
			effect, _ := m["effect"].(string)
			taints = append(taints, key+"="+value+":"+effect)
		}
		return []flagSetting{{"register-with-taints", strings.Join(taints, ",")}}, nil
	},
	"authentication": nested(map[string]configField{
		"anonymous": nested(map[string]configField{"enabled": toFlag("anonymous-auth")}),
		"webhook": nested(map[string]configField{
			"enabled":  only("clients are always authenticated by TokenReview", true),
			"cacheTTL": ignore,
		}),
		"x509": nested(map[string]configField{"clientCAFile": toFlag("client-ca-file")}),
	}),
	"authorization": nested(map[string]configField{
		"mode":    toFlag("authorization-mode"),
		"webhook": ignore, // cacheAuthorizedTTL, cacheUnauthorizedTTL
	}),
	"logging": nested(map[string]configField{
		"verbosity":      toFlag("v"),
		"format":         only("logs are text", "text"),
		"flushFrequency": ignore,
		"options":        ignore,
		"vmodule":        ignore,
	}),
}

// tuningFields are accepted whatever their value (see above).
var tuningFields = []string{
	"syncFrequency", "fileCheckFrequency", "httpCheckFrequency", "registryPullQPS", "registryBurst", "eventRecordQPS", "eventBurst",
	"enableDebuggingHandlers", "enableContentionProfiling", "oomScoreAdj", "streamingConnectionIdleTimeout",
	"nodeStatusUpdateFrequency", "nodeStatusReportFrequency", "nodeLeaseDurationSeconds", "imageMinimumGCAge", "imageMaximumGCAge",
	"imageGCHighThresholdPercent", "imageGCLowThresholdPercent", "volumeStatsAggPeriod", "kubeletCgroups", "systemCgroups",
	"cpuManagerReconcilePeriod", "runtimeRequestTimeout", "hairpinMode", "nodeStatusMaxImages", "maxOpenFiles", "contentType",
	"kubeAPIQPS", "kubeAPIBurst", "serializeImagePulls", "maxParallelImagePulls", "evictionPressureTransitionPeriod",
	"mergeDefaultEvictionSettings", "enableControllerAttachDetach", "protectKernelDefaults", "makeIPTablesUtilChains",
	"iptablesMasqueradeBit", "iptablesDropBit", "failSwapOn", "failCgroupV1", "containerLogMaxWorkers", "containerLogMonitorInterval",
	"configMapAndSecretChangeDetectionStrategy", "showHiddenMetricsForVersion", "volumePluginDir", "kernelMemcgNotification",
	"enableSystemLogHandler", "enableSystemLogQuery", "enableProfilingHandler", "enableDebugFlagsHandler", "localStorageCapacityIsolation",
}

// defaultOnly are the fields of behaviours the agent lacks whose default
// is not their zero value: accepted at that default.
var defaultOnly = map[string][]any{
	"cpuManagerPolicy":          {"none"},
	"memoryManagerPolicy":       {"None"},
	"topologyManagerPolicy":     {"none"},
	"topologyManagerScope":      {"container"},
	"podPidsLimit":              {float64(-1)},
	"cpuCFSQuota":               {true},
	"cpuCFSQuotaPeriod":         {"100ms"},
	"memoryThrottlingFactor":    {0.9},
	"evictionMaxPodGracePeriod": {float64(0)},
}

// unsupportedFields are the rest of the format: behaviours the agent
// lacks, accepted only at their default.
var unsupportedFields = []string{
	"staticPodURL", "staticPodURLHeader", "tlsCipherSuites", "tlsCurvePreferences", "tlsMinVersion",
	"imagePullCredentialsVerificationPolicy", "preloadedImagesVerificationAllowlist", "cpuManagerPolicy", "singleProcessOOMKill",
	"cpuManagerPolicyOptions", "memoryManagerPolicy", "topologyManagerPolicy", "topologyManagerScope", "topologyManagerPolicyOptions",
	"qosReserved", "podCIDR", "podPidsLimit", "runOnce", "cpuCFSQuota", "cpuCFSQuotaPeriod", "evictionSoft", "evictionSoftGracePeriod",
	"evictionMaxPodGracePeriod", "evictionMinimumReclaim", "podsPerCore", "featureGates", "reservedSystemCPUs", "systemReservedCgroup",
	"kubeReservedCgroup", "shutdownGracePeriod", "shutdownGracePeriodCriticalPods", "shutdownGracePeriodByPodPriority", "crashLoopBackOff",
	"reservedMemory", "memoryThrottlingFactor", "memoryReservationPolicy", "tracing", "userNamespaces", "imageServiceEndpoint",
}

// KubeletConfigFields are every top-level field of the format, for tests
// to hold against the upstream type.
func KubeletConfigFields() []string {
	out := append(append([]string{}, tuningFields...), unsupportedFields...)
	for f := range configFields {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func ignore(any) ([]flagSetting, error) { return nil, nil }

// only accepts the listed values (or none given), explaining why not else.
func only(why string, allowed ...any) configField {
	return func(v any) ([]flagSetting, error) {
		if isZero(v) || slices.ContainsFunc(allowed, func(a any) bool { return jsonEqual(a, v) }) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s is not supported by kubeparts-nodeagent: %s", jsonText(v), why)
	}
}

// nested reads a map field by its own table; a field the table lacks is unknown.
func nested(fields map[string]configField) configField {
	return func(v any) ([]flagSetting, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("want an object")
		}
		var out []flagSetting
		for _, k := range sortedKeys(m) {
			f, ok := fields[k]
			if !ok {
				return nil, fmt.Errorf("unknown field %q", k)
			}
			s, err := f(m[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, s...)
		}
		return out, nil
	}
}

// pairsFlag turns a map into the flag's "name<sep>value,..." form.
func pairsFlag(flag, sep string) configField {
	return func(v any) ([]flagSetting, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("want a map of names to quantities")
		}
		var pairs []string
		for _, k := range sortedKeys(m) {
			s, err := scalar(m[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			pairs = append(pairs, k+sep+s)
		}
		return []flagSetting{{flag, strings.Join(pairs, ",")}}, nil
	}
}

// scalar is a value as a flag takes it (lists comma-separated).
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return fmt.Sprint(x), nil
	case float64:
		return fmt.Sprint(x), nil
	case nil:
		return "", nil
	case []any:
		var parts []string
		for _, e := range x {
			s, err := scalar(e)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("want a single value, not %s", jsonText(v))
}

// isZero: nothing set (kubeadm writes unset durations as "0s", empty
// objects as {} and logging's buffer sizes as "0").
func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == "" || x == "0s" || x == "0"
	case bool:
		return !x
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		for _, e := range x {
			if !isZero(e) {
				return false
			}
		}
		return true
	}
	return false
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonEqual(a, b any) bool { return jsonText(a) == jsonText(b) }

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// readKubeletConfig reads a KubeletConfiguration file into flag settings,
// reporting every bad field at once.
func readKubeletConfig(path string) ([]flagSetting, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	var doc map[string]any
	if err := json.NewDecoder(bytes.NewReader(js)).Decode(&doc); err != nil || doc == nil {
		return nil, fmt.Errorf("--config %s: not a KubeletConfiguration object", path)
	}
	if doc["apiVersion"] != kubeletConfigGroupVersion || doc["kind"] != kubeletConfigKind {
		return nil, fmt.Errorf("--config %s: apiVersion %v kind %v, want %s %s", path, doc["apiVersion"], doc["kind"], kubeletConfigGroupVersion, kubeletConfigKind)
	}
	var out []flagSetting
	var errs []string
	for _, k := range sortedKeys(doc) {
		v := doc[k]
		switch {
		case k == "apiVersion" || k == "kind":
		case configFields[k] != nil:
			s, err := configFields[k](v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", k, err))
			}
			out = append(out, s...)
		case slices.Contains(tuningFields, k):
		case slices.Contains(unsupportedFields, k):
			if !isZero(v) && !slices.ContainsFunc(defaultOnly[k], func(a any) bool { return jsonEqual(a, v) }) {
				errs = append(errs, fmt.Sprintf("%s: %s is not supported by kubeparts-nodeagent (only its default)", k, jsonText(v)))
			}
		default:
			errs = append(errs, fmt.Sprintf("%s: unknown field of %s", k, kubeletConfigKind))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("--config %s:\n  %s", path, strings.Join(errs, "\n  "))
	}
	return out, nil
}

// ApplyConfigFile sets, from the --config file, the flags the command line
// did not set.
func (o *Options) ApplyConfigFile(fs *pflag.FlagSet) error {
	if o.ConfigFile == "" {
		return nil
	}
	settings, err := readKubeletConfig(o.ConfigFile)
	if err != nil {
		return err
	}
	for _, s := range settings {
		if fs.Changed(s.flag) {
			continue
		}
		f := fs.Lookup(s.flag)
		if f == nil {
			return fmt.Errorf("--config: no flag %s (a bug)", s.flag)
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok { // replace, not append to, the default
			if err := sv.Replace(splitList(s.value)); err != nil {
				return fmt.Errorf("--config %s: %s: %w", o.ConfigFile, s.flag, err)
			}
			continue
		}
		if err := f.Value.Set(s.value); err != nil {
			return fmt.Errorf("--config %s: the field for --%s: %w", o.ConfigFile, s.flag, err)
		}
	}
	return nil
}

func splitList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Complete fills what the kubelet works out by itself when a kubeadm or
// kind node does not say it: the runtime is the CRI endpoint's when one is
// given, the node is named after the host (lowercased), and a real node's
// IP is the address it reaches the network from.
func (o *Options) Complete(fs *pflag.FlagSet) {
	if !fs.Changed("runtime") && o.RuntimeEndpoint != "" {
		o.Runtime = "remote"
	}
	if o.NodeName == "" {
		if h, err := os.Hostname(); err == nil {
			o.NodeName = strings.ToLower(h)
		}
	}
	if o.Runtime == "remote" && !fs.Changed("node-ip") {
		if ip := outboundIP(); ip != "" {
			o.NodeIP = ip
		}
	}
}

// outboundIP is the local IPv4 address routes to the outside start from
// (a UDP "connection" sends nothing), "" when there is no route.
func outboundIP() string {
	c, err := net.Dial("udp4", "192.0.2.1:9") // TEST-NET-1: any routed address does
	if err != nil {
		return ""
	}
	defer func() { _ = c.Close() }()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
