// Package namespace is kubeparts' namespace-controller: when a namespace is deleted it
// empties it and then removes the `kubernetes` finalizer through the /finalize
// subresource, the only way the apiserver accepts. It walks discovery for every
// namespaced resource that can be listed and deleted, deletes pods first and waits for
// them (ordered namespace deletion), and reports what blocks it in the stock
// NamespaceDeletion* and NamespaceContentRemaining/NamespaceFinalizersRemaining
// conditions: an aggregated API that does not answer discovery is named there and keeps
// the namespace from being finalized (its objects cannot be checked), never a silent hang.
package namespace
