package noderesourcesfit

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubeparts/kubeparts/scheduler-plugins/internal/difftest"
)

// Bad args must stop the scheduler at start-up with a message naming the field.
func TestNewRejectsBadArgs(t *testing.T) {
	for _, tc := range []struct {
		name, args, want string
	}{
		{"weight zero after defaulting is fine, negative is not", `{"scoringStrategy":{"type":"LeastAllocated","resources":[{"name":"cpu","weight":-1}]}}`, "scoringStrategy.resources[0].weight"},
		{"weight over 100", `{"scoringStrategy":{"type":"MostAllocated","resources":[{"name":"cpu","weight":101}]}}`, `weight of resource "cpu" must be in (0, 100]`},
		{"unknown strategy", `{"scoringStrategy":{"type":"MostRequested"}}`, `scoringStrategy.type: Unsupported value: "MostRequested"`},
		{"unknown resource", `{"scoringStrategy":{"type":"LeastAllocated","resources":[{"name":"cpus","weight":1}]}}`, `scoringStrategy.resources[0].name: Invalid value: "cpus": unknown resource`},
		{"pods is not scored", `{"scoringStrategy":{"type":"LeastAllocated","resources":[{"name":"pods","weight":1}]}}`, "pods is checked by the filter"},
		{"duplicate resource", `{"scoringStrategy":{"type":"LeastAllocated","resources":[{"name":"cpu","weight":1},{"name":"cpu","weight":2}]}}`, "Duplicate value"},
		{"ratio without shape", `{"scoringStrategy":{"type":"RequestedToCapacityRatio"}}`, "requestedToCapacityRatio: Required value"},
		{"shape not increasing", `{"scoringStrategy":{"type":"RequestedToCapacityRatio","requestedToCapacityRatio":{"shape":[{"utilization":50,"score":1},{"utilization":10,"score":2}]}}}`, "utilization must increase"},
		{"shape score out of range", `{"scoringStrategy":{"type":"RequestedToCapacityRatio","requestedToCapacityRatio":{"shape":[{"utilization":0,"score":11}]}}}`, "score: Invalid value: 11"},
		{"shape with another strategy", `{"scoringStrategy":{"type":"LeastAllocated","requestedToCapacityRatio":{"shape":[{"utilization":0,"score":1}]}}}`, "only allowed when type is RequestedToCapacityRatio"},
		{"resource group with slash", `{"ignoredResourceGroups":["example.com/foo"]}`, "cannot contain '/'"},
		{"misspelt field", `{"scoringStrateg":{"type":"LeastAllocated"}}`, `unknown field "scoringStrateg"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), &runtime.Unknown{Raw: []byte(tc.args)}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), Name) {
				t.Errorf("err %q does not name the plugin", err)
			}
		})
	}
}

func TestNewAcceptsStockStyleArgs(t *testing.T) {
	for _, args := range []string{
		``, `{}`,
		`{"scoringStrategy":{"type":"MostAllocated","resources":[{"name":"cpu","weight":3},{"name":"nvidia.com/gpu","weight":5},{"name":"hugepages-2Mi"}]}}`,
		`{"ignoredResources":["example.com/foo"],"ignoredResourceGroups":["example.org"]}`,
		`{"scoringStrategy":{"type":"RequestedToCapacityRatio","resources":[{"name":"memory","weight":1}],"requestedToCapacityRatio":{"shape":[{"utilization":0,"score":10},{"utilization":100,"score":0}]}}}`,
	} {
		h := difftest.NewEnv(t, &difftest.Cluster{}).Handle
		if _, err := New(context.Background(), &runtime.Unknown{Raw: []byte(args)}, h); err != nil {
			t.Errorf("args %s: %v", args, err)
		}
	}
}
