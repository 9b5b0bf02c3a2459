//go:build tools

// Package tools records the generator main packages this module builds.
package tools

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
