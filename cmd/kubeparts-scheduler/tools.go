//go:build tools

package main

// The scheduler is to be built on the upstream scheduler runtime (DESIGN.md §4); this
// keeps k8s.io/kubernetes and its staging pins in go.mod until the code imports it.
import _ "k8s.io/kubernetes/cmd/kube-scheduler/app"
