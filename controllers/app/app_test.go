package app

import (
	"testing"

	"github.com/kubeparts/kubeparts/internal/controllernames"
)

// Every controller `up` switches off in the stock manager must be one this binary runs.
func TestEveryImplementedControllerHasASetup(t *testing.T) {
	for _, name := range controllernames.Names() {
		if setups[name] == nil {
			t.Errorf("%s is listed as implemented but has no setup", name)
		}
	}
	if len(setups) != len(controllernames.Implemented) {
		t.Errorf("%d setups for %d implemented controllers", len(setups), len(controllernames.Implemented))
	}
}
