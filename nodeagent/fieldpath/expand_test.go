package fieldpath

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "B": "y"}
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)-$(B)":      "x-y",
		"$$(A)":          "$(A)", // escaped
		"$(MISSING)":     "$(MISSING)",
		"cost $5":        "cost $5",
		"open $(A":       "open $(A",
		"trailing $":     "trailing $",
		"$(A)$(A)$$$(B)": "xx$y",
	} {
		if got := Expand(in, env); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpandStrict(t *testing.T) {
	env := map[string]string{"A": "x", "B": "y", "E": ""}
	for in, want := range map[string]struct {
		out     string
		missing string
	}{
		"plain":       {"plain", ""},
		"$(A)/$(B)":   {"x/y", ""},
		"$$(A)":       {"$(A)", ""},
		"$(A)$$$(B)":  {"x$y", ""},
		"open $(A":    {"open $(A", ""},
		"cost $5":     {"cost $5", ""},
		"$(E)/$(Z)/a": {"//a", "E,Z"},
	} {
		out, missing := ExpandStrict(in, env)
		if out != want.out || strings.Join(missing, ",") != want.missing {
			t.Errorf("ExpandStrict(%q) = %q, %v; want %q, %s", in, out, missing, want.out, want.missing)
		}
	}
}
