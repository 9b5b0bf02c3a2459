//go:build tools

// Package tools records the main packages this module builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "sigs.k8s.io/kind"
)
