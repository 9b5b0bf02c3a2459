package fieldpath

import (
	"sort"
	"strings"
)

// Expand replaces $(VAR) references to earlier variables; $$ escapes, and an
// unknown reference is left as written, as the kubelet does for command,
// args and env.
func Expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	return expand(s, func(name string) (string, bool) { v, ok := env[name]; return v, ok })
}

// ExpandStrict is Expand for a volume mount's subPathExpr: a reference to a
// variable that is unset or empty expands to nothing and is reported, since
// the kubelet refuses a path with a hole in it.
func ExpandStrict(s string, env map[string]string) (string, []string) {
	missing := map[string]bool{}
	out := expand(s, func(name string) (string, bool) {
		if v := env[name]; v != "" {
			return v, true
		}
		missing[name] = true
		return "", true
	})
	names := make([]string, 0, len(missing))
	for n := range missing {
		names = append(names, n)
	}
	sort.Strings(names)
	return out, names
}

// expand substitutes each $(NAME) that lookup resolves and keeps the others
// as written; $$ is a literal $.
func expand(s string, lookup func(name string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			if v, ok := lookup(s[i+2 : i+end]); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
