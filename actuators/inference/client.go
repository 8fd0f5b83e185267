package inference

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Client returns a client that acts as user (Kubernetes impersonation),
// e.g. system:serviceaccount:ebbflow:ebbflow-inference, so the handler
// holds only that identity's rights (deploy/rbac/inference.yaml) while the
// actuator's own identity needs nothing more than the right to
// impersonate it. An empty user returns a client acting as rc's identity.
func Client(rc *rest.Config, user string) (kubernetes.Interface, error) {
	c := rest.CopyConfig(rc)
	if user != "" {
		c.Impersonate = rest.ImpersonationConfig{UserName: user}
	}
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("inference: client acting as %q: %w", user, err)
	}
	return cs, nil
}
