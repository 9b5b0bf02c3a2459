// Package config holds kubeparts-proxy's configuration and its loader.
//
// kubeparts-proxy is a drop-in replacement for kube-proxy in nftables mode, so
// it takes kube-proxy's flags (same names, meanings and defaults) and its
// kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration file (--config), as
// kubeadm writes it into the kube-proxy ConfigMap. Options parses both and
// Complete turns them into a validated Config.
//
// Where it differs from kube-proxy, on purpose:
//   - Flags set on the command line override the --config file (kube-proxy
//     ignores most flags when --config is given), so one ConfigMap can be
//     shared and tuned per node.
//   - The file is decoded strictly: an unknown or duplicate field is an error
//     (kube-proxy falls back to lenient decoding with a warning).
//   - A file field that kube-proxy has but kubeparts-proxy does not implement
//     is an error when set to anything but its default, instead of being
//     silently ignored.
//   - Only the nftables mode exists.
package config
