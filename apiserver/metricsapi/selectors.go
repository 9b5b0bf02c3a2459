package metricsapi

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// selectors returns the list's label and field selectors, refusing field
// selectors on anything but the given fields with a BadRequest that says
// which ones work (rather than silently matching nothing).
func selectors(opts *metainternalversion.ListOptions, allowed ...string) (labels.Selector, fields.Selector, error) {
	ls, fs := labels.Everything(), fields.Everything()
	if opts == nil {
		return ls, fs, nil
	}
	if opts.LabelSelector != nil {
		ls = opts.LabelSelector
	}
	if opts.FieldSelector != nil {
		for _, r := range opts.FieldSelector.Requirements() {
			ok := false
			for _, a := range allowed {
				ok = ok || r.Field == a
			}
			if !ok {
				return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("field selector %q is not supported: only %s can be selected on", r.Field, strings.Join(allowed, " and ")))
			}
		}
		fs = opts.FieldSelector
	}
	return ls, fs, nil
}
