// Package config carries the manifests under config/ into the binaries that apply them
// themselves (`kubeparts up`), so that the files users `kubectl apply` and what the
// local cluster installs are the same bytes.
package config

import "embed"

// RBAC holds config/rbac/*.yaml.
//
//go:embed rbac/*.yaml
var RBAC embed.FS
