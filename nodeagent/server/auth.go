package server

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// Authentication and authorization as the kubelet configures them through
// k8s.io/apiserver's delegating factories, written out here: that library
// alone would add some 150 packages and a third to the agent's resident
// memory, for three small API calls.
//
//   - a client certificate verified against --client-ca-file: the user is
//     its CommonName, the groups its Organizations;
//   - else a bearer token, checked with a TokenReview (answers cached 2 min);
//   - else, with --anonymous-auth, system:anonymous;
//   - then a SubjectAccessReview on nodes/<subresource> (allowed answers
//     cached 5 min, denials 30 s, as the kubelet's defaults).

// userInfo is an authenticated requester.
type userInfo struct {
	name, uid string
	groups    []string
	extra     map[string]authorizationv1.ExtraValue
}

// attributes is one authorization check: a verb on a subresource of the node.
type attributes struct {
	verb, subresource string
}

const (
	tokenCacheTTL = 2 * time.Minute
	allowCacheTTL = 5 * time.Minute
	denyCacheTTL  = 30 * time.Second
	// caReload is how often the client CA file is looked at for changes.
	caReload = 10 * time.Second
)

var errUnauthenticated = errors.New("unauthenticated")

type auth struct {
	client      kubeclient.Interface
	nodeName    string
	anonymous   bool
	alwaysAllow bool

	caFile    string
	mu        sync.Mutex
	pool      *x509.CertPool
	caChecked time.Time
	caModTime time.Time

	tokens    ttlCache[*userInfo]
	decisions ttlCache[bool]
}

func newAuth(client kubeclient.Interface, nodeName, caFile string, anonymous, alwaysAllow bool) (*auth, error) {
	a := &auth{client: client, nodeName: nodeName, caFile: caFile, anonymous: anonymous, alwaysAllow: alwaysAllow}
	if caFile != "" {
		if _, err := a.clientCAs(); err != nil {
			return nil, fmt.Errorf("--client-ca-file: %w", err)
		}
	}
	return a, nil
}

// clientCAs is the CA pool, re-read when the file changed (rotation).
func (a *auth) clientCAs() (*x509.CertPool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pool != nil && time.Since(a.caChecked) < caReload {
		return a.pool, nil
	}
	a.caChecked = time.Now()
	st, err := os.Stat(a.caFile)
	if err != nil {
		return a.pool, err
	}
	if a.pool != nil && st.ModTime().Equal(a.caModTime) {
		return a.pool, nil
	}
	data, err := os.ReadFile(a.caFile)
	if err != nil {
		return a.pool, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return a.pool, fmt.Errorf("%s holds no PEM certificate", a.caFile)
	}
	a.pool, a.caModTime = pool, st.ModTime()
	return pool, nil
}

// authenticate finds who sent r.
func (a *auth) authenticate(r *http.Request) (*userInfo, error) {
	if a.caFile != "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		pool, _ := a.clientCAs()
		certs := r.TLS.PeerCertificates
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			return &userInfo{name: certs[0].Subject.CommonName, groups: append([]string{}, certs[0].Subject.Organization...)}, nil
		}
		// An unverifiable certificate: a bearer token may still authenticate.
	}
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && strings.TrimSpace(token) != "" {
		return a.reviewToken(r.Context(), strings.TrimSpace(token))
	}
	if a.anonymous {
		return &userInfo{name: "system:anonymous", groups: []string{"system:unauthenticated"}}, nil
	}
	return nil, errUnauthenticated
}

func (a *auth) reviewToken(ctx context.Context, token string) (*userInfo, error) {
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	if u, ok := a.tokens.get(key); ok {
		if u == nil {
			return nil, errUnauthenticated
		}
		return u, nil
	}
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("TokenReview: %w", err) // not cached: the API server may be back soon
	}
	var u *userInfo
	if tr.Status.Authenticated {
		u = &userInfo{name: tr.Status.User.Username, uid: tr.Status.User.UID, groups: tr.Status.User.Groups, extra: map[string]authorizationv1.ExtraValue{}}
		for k, v := range tr.Status.User.Extra {
			u.extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	a.tokens.put(key, u, tokenCacheTTL)
	if u == nil {
		return nil, errUnauthenticated
	}
	return u, nil
}

// authorize asks whether u may do attrs on the node.
func (a *auth) authorize(ctx context.Context, u *userInfo, attrs attributes) (bool, error) {
	if a.alwaysAllow {
		return true, nil
	}
	groups := append([]string{}, u.groups...)
	sort.Strings(groups)
	key := strings.Join([]string{u.name, u.uid, strings.Join(groups, ","), attrs.verb, attrs.subresource}, "\x00")
	if allowed, ok := a.decisions.get(key); ok {
		return allowed, nil
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.name, UID: u.uid, Groups: u.groups, Extra: u.extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: attrs.verb, Version: "v1", Resource: "nodes", Subresource: attrs.subresource, Name: a.nodeName},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	ttl := denyCacheTTL
	if sar.Status.Allowed {
		ttl = allowCacheTTL
	}
	a.decisions.put(key, sar.Status.Allowed, ttl)
	return sar.Status.Allowed, nil
}

// ttlCache is a small map with expiring entries; it is emptied when it
// grows past its bound, which only a flood of distinct tokens can cause.
type ttlCache[V any] struct {
	mu      sync.Mutex
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

const ttlCacheMax = 10000

func (c *ttlCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || time.Now().After(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(key string, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= ttlCacheMax {
		c.entries = map[string]ttlEntry[V]{}
	}
	c.entries[key] = ttlEntry[V]{v, time.Now().Add(ttl)}
}
