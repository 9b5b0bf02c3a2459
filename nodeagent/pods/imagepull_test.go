package pods

import (
	"encoding/base64"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// Which imagePullSecrets credentials are offered for an image: entries
// matching its registry (and path prefix), the most specific first, Docker
// Hub under any of its spellings.
func TestCredentialsFor(t *testing.T) {
	auth := func(u string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":pw")) }
	secret := &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths": {
		"https://index.docker.io/v1/": {"auth": "` + auth("hub") + `"},
		"registry.example.com": {"username": "plain", "password": "pw"},
		"registry.example.com/team": {"auth": "` + auth("team") + `"},
		"other.example.com:5000": {"auth": "` + auth("port") + `"}}}`)}}
	auths, err := parseDockerConfig(secret)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ image, want string }{
		{"busybox:1.35", "hub"},
		{"library/busybox", "hub"},
		{"docker.io/me/app@sha256:abc", "hub"},
		{"registry.example.com/app:1", "plain"},
		{"registry.example.com/team/app:1", "team,plain"},
		{"registry.example.com/teamster/app", "plain"},
		{"other.example.com:5000/x:2", "port"},
		{"other.example.com/x:2", ""},
		{"quay.io/x", ""},
	}
	for _, tt := range tests {
		var users []string
		for _, a := range credentialsFor(tt.image, auths) {
			users = append(users, a.Username)
		}
		if got := strings.Join(users, ","); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.image, got, tt.want)
		}
	}
	for _, bad := range []map[string][]byte{
		{corev1.DockerConfigJsonKey: []byte("{")},
		{corev1.DockerConfigJsonKey: []byte(`{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}`)}, // "nocolon"
		{},
	} {
		if _, err := parseDockerConfig(&corev1.Secret{Data: bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
