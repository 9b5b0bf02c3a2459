// Package pluginargs decodes the args of kubeparts scheduler plugins.
//
// Our plugins take the same fields as the stock plugin they replace (for
// example NodeResourcesFitArgs' scoringStrategy) so an operator can move a
// pluginConfig entry over by renaming the plugin. The scheduler only knows the
// in-tree arg kinds, so ours reach New as *runtime.Unknown and are decoded here
// into the public k8s.io/kube-scheduler/config/v1 types.
package pluginargs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Decode fills into from the plugin's configured args; nil args leave into
// untouched so the caller's defaults apply. Args the scheduler already decoded
// into an in-tree type (because they carried the stock apiVersion and kind) are
// refused with a hint, rather than silently ignored.
func Decode(plugin string, obj runtime.Object, into any) error {
	if obj == nil {
		return nil
	}
	if _, ok := obj.(*runtime.Unknown); !ok {
		return fmt.Errorf("plugin %s: args were decoded as %T; leave out apiVersion and kind (or use kind %sArgs) so the plugin decodes them itself", plugin, obj, plugin)
	}
	u := obj.(*runtime.Unknown)
	if len(u.Raw) == 0 {
		return nil
	}
	// Strict, unlike the framework's DecodeInto: a misspelt field must fail
	// start-up instead of silently running with defaults.
	var err error
	switch u.ContentType {
	case runtime.ContentTypeJSON, "":
		dec := json.NewDecoder(bytes.NewReader(u.Raw))
		dec.DisallowUnknownFields()
		err = dec.Decode(into)
	case runtime.ContentTypeYAML:
		err = yaml.UnmarshalStrict(u.Raw, into)
	default:
		err = fmt.Errorf("unsupported content type %q", u.ContentType)
	}
	if err != nil {
		return fmt.Errorf("plugin %s: decoding args: %w", plugin, err)
	}
	return nil
}

// None rejects args given to a plugin that takes none, so a pluginConfig
// entry under the wrong name does not pass silently.
func None(plugin string, obj runtime.Object) error {
	if obj == nil {
		return nil
	}
	if u, ok := obj.(*runtime.Unknown); ok {
		if raw := strings.TrimSpace(string(u.Raw)); raw == "" || raw == "{}" || raw == "null" {
			return nil
		}
	}
	return fmt.Errorf("plugin %s takes no args", plugin)
}
