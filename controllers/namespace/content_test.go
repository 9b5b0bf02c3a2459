package namespace

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// allGone may skip the list after a collection deletion only when nothing the
// deletion touched can still exist.
func TestAllGone(t *testing.T) {
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	item := func(finalizers []string, terminating bool) metav1.PartialObjectMetadata {
		m := metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "x", Finalizers: finalizers}}
		if terminating {
			now := metav1.Now()
			m.DeletionTimestamp = &now
		}
		return m
	}
	list := func(items ...metav1.PartialObjectMetadata) *metav1.PartialObjectMetadataList {
		return &metav1.PartialObjectMetadataList{Items: items}
	}
	for _, tc := range []struct {
		name    string
		gvr     schema.GroupVersionResource
		deleted *metav1.PartialObjectMetadataList
		want    bool
	}{
		{"nothing there", cms, list(), true},
		{"plain objects deleted at once", cms, list(item(nil, false), item(nil, false)), true},
		{"one waits for a finalizer", cms, list(item(nil, false), item([]string{"example.com/hold"}, false)), false},
		{"one was already terminating", cms, list(item(nil, true)), false},
		{"pods terminate gracefully", podsGVR, list(), false},
		{"the server said no list", cms, nil, false},
	} {
		if got := allGone(tc.gvr, tc.deleted); got != tc.want {
			t.Errorf("%s: allGone = %v, want %v", tc.name, got, tc.want)
		}
	}
}
