package volumes

import (
	"context"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

const (
	// defaultTokenExpiration is the API's default expirationSeconds.
	defaultTokenExpiration int64 = 3600
	// maxTokenAge renews even long-lived tokens daily, as the kubelet does.
	maxTokenAge = 24 * time.Hour
)

type tokenKey struct {
	pod        types.UID
	sa         string
	audience   string
	expiration int64
}

type tokenEntry struct {
	token     []byte
	expires   time.Time
	refreshAt time.Time
}

// tokenCache holds the service account tokens of projected volumes, so a
// pod sync asks the API server for one only when it is due.
type tokenCache struct {
	mu      sync.Mutex
	entries map[tokenKey]*tokenEntry
}

func (c *tokenCache) get(k tokenKey) *tokenEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[k]
}

func (c *tokenCache) set(k tokenKey, e *tokenEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[k] = e
}

func (c *tokenCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if k.pod == uid {
			delete(c.entries, k)
		}
	}
}

// token is the pod's service account token for a projection, bound to the
// pod so it dies with it. It is renewed once 80% of its lifetime or 24h has
// passed (the kubelet's rule, without its random jitter, which only spreads
// load across a node's many pods). If renewal fails, the cached token serves
// until it expires.
func (m *Manager) token(ctx context.Context, pod *corev1.Pod, p *corev1.ServiceAccountTokenProjection) ([]byte, error) {
	if pod.Spec.ServiceAccountName == "" {
		return nil, fmt.Errorf("cannot request a service account token: the pod has no serviceAccountName")
	}
	exp := defaultTokenExpiration
	if p.ExpirationSeconds != nil {
		exp = *p.ExpirationSeconds
	}
	key := tokenKey{pod.UID, pod.Spec.ServiceAccountName, p.Audience, exp}
	now := m.now()
	cached := m.tokens.get(key)
	if cached != nil && now.Before(cached.refreshAt) {
		return cached.token, nil
	}
	var audiences []string // nil: the API server's own audience
	if p.Audience != "" {
		audiences = []string{p.Audience}
	}
	tr, err := m.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         audiences,
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err == nil && (tr == nil || tr.Status.Token == "") {
		err = fmt.Errorf("the API server returned no token")
	}
	if err != nil {
		switch {
		case cached == nil:
			return nil, fmt.Errorf("failed to fetch token: %w", err)
		case !now.Before(cached.expires):
			return nil, fmt.Errorf("token of service account %q expired and refresh failed: %w", pod.Spec.ServiceAccountName, err)
		}
		klog.FromContext(ctx).Error(err, "Couldn't renew service account token, using the cached one", "pod", klog.KObj(pod), "serviceAccount", pod.Spec.ServiceAccountName)
		return cached.token, nil
	}
	e := &tokenEntry{token: []byte(tr.Status.Token), expires: tr.Status.ExpirationTimestamp.Time}
	// The server may have granted another lifetime than asked for.
	lifetime := exp
	if tr.Spec.ExpirationSeconds != nil && *tr.Spec.ExpirationSeconds > 0 {
		lifetime = *tr.Spec.ExpirationSeconds
	}
	issued := e.expires.Add(-time.Duration(lifetime) * time.Second)
	e.refreshAt = e.expires.Add(-time.Duration(lifetime*20/100) * time.Second)
	if daily := issued.Add(maxTokenAge); daily.Before(e.refreshAt) {
		e.refreshAt = daily
	}
	m.tokens.set(key, e)
	return e.token, nil
}

// NextRefresh is when the earliest of the pod's cached tokens is due for
// renewal; ok is false if it has none. The caller syncs the pod again by
// then for the token files to stay valid.
func (m *Manager) NextRefresh(uid types.UID) (at time.Time, ok bool) {
	m.tokens.mu.Lock()
	defer m.tokens.mu.Unlock()
	for k, e := range m.tokens.entries {
		if k.pod == uid && (!ok || e.refreshAt.Before(at)) {
			at, ok = e.refreshAt, true
		}
	}
	return at, ok
}
