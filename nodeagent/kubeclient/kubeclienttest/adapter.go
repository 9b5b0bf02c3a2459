// Package kubeclienttest lets unit tests drive the agent with client-go's
// fake clientset. Only tests import it: the agent itself must not link the
// full clientset (see package kubeclient).
package kubeclienttest

import (
	"k8s.io/client-go/kubernetes"

	"github.com/kubeparts/kubeparts/nodeagent/kubeclient"
)

// FromClientset adapts a clientset (fake.NewClientset()) to kubeclient.Interface.
func FromClientset(cs kubernetes.Interface) kubeclient.Interface { return adapter{cs} }

type adapter struct{ cs kubernetes.Interface }

func (a adapter) CoreV1() kubeclient.CoreV1Interface                 { return core(a) }
func (a adapter) CoordinationV1() kubeclient.CoordinationV1Interface { return coordination(a) }
func (a adapter) AuthenticationV1() kubeclient.AuthenticationV1Interface {
	return authentication(a)
}
func (a adapter) AuthorizationV1() kubeclient.AuthorizationV1Interface { return authorization(a) }
func (a adapter) CertificatesV1() kubeclient.CertificatesV1Interface   { return certificates(a) }

type certificates struct{ cs kubernetes.Interface }

func (c certificates) CertificateSigningRequests() kubeclient.CertificateSigningRequestInterface {
	return c.cs.CertificatesV1().CertificateSigningRequests()
}

type core struct{ cs kubernetes.Interface }

func (c core) Pods(ns string) kubeclient.PodInterface { return c.cs.CoreV1().Pods(ns) }
func (c core) Nodes() kubeclient.NodeInterface        { return c.cs.CoreV1().Nodes() }
func (c core) ConfigMaps(ns string) kubeclient.ConfigMapInterface {
	return c.cs.CoreV1().ConfigMaps(ns)
}
func (c core) Secrets(ns string) kubeclient.SecretInterface { return c.cs.CoreV1().Secrets(ns) }
func (c core) ServiceAccounts(ns string) kubeclient.ServiceAccountInterface {
	return c.cs.CoreV1().ServiceAccounts(ns)
}
func (c core) Events(ns string) kubeclient.EventInterface { return c.cs.CoreV1().Events(ns) }
func (c core) Services(ns string) kubeclient.ServiceInterface {
	return c.cs.CoreV1().Services(ns)
}

func (c core) PersistentVolumeClaims(ns string) kubeclient.PersistentVolumeClaimInterface {
	return c.cs.CoreV1().PersistentVolumeClaims(ns)
}
func (c core) PersistentVolumes() kubeclient.PersistentVolumeInterface {
	return c.cs.CoreV1().PersistentVolumes()
}

type coordination struct{ cs kubernetes.Interface }

func (c coordination) Leases(ns string) kubeclient.LeaseInterface {
	return c.cs.CoordinationV1().Leases(ns)
}

type authentication struct{ cs kubernetes.Interface }

func (c authentication) TokenReviews() kubeclient.TokenReviewInterface {
	return c.cs.AuthenticationV1().TokenReviews()
}

type authorization struct{ cs kubernetes.Interface }

func (c authorization) SubjectAccessReviews() kubeclient.SubjectAccessReviewInterface {
	return c.cs.AuthorizationV1().SubjectAccessReviews()
}
