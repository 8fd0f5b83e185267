package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The environment variables deploy/dev/services.sh writes to .dev/services.env for the cluster.
const (
	EnvKubeconfig        = "EBBFLOW_TEST_KUBECONFIG" // admin kubeconfig (client certificate, system:masters)
	EnvScheduler         = "EBBFLOW_TEST_KUBE_SCHEDULER"
	EnvControllerManager = "EBBFLOW_TEST_KUBE_CONTROLLER_MANAGER"
	EnvKwok              = "EBBFLOW_TEST_KWOK"
	EnvKueue             = "EBBFLOW_TEST_KUEUE" // the Kueue controller's health endpoint
	hint                 = "start the real services with `deploy/dev/services.sh up` and `source .dev/services.env`"
)

// Env is the admin's view of the test cluster.
type Env struct {
	Config  *rest.Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
}

// Connect reads EBBFLOW_TEST_KUBECONFIG and checks that kube-scheduler,
// kube-controller-manager and kwok answer their health endpoints; it fails the test with the
// reason otherwise. Kueue is checked by the Kueue helpers (RequireKueue).
func Connect(t testing.TB) *Env {
	t.Helper()
	path := env(t, EnvKubeconfig)
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("%s=%s: %v", EnvKubeconfig, path, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kube client: %v", err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	for _, v := range []string{EnvScheduler, EnvControllerManager, EnvKwok} {
		requireHealthy(t, v)
	}
	return &Env{Config: cfg, Kube: kc, Dynamic: dc}
}

// RequireKueue fails the test unless the Kueue controller answers its readiness probe.
func RequireKueue(t testing.TB) {
	t.Helper()
	base := env(t, EnvKueue)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/readyz")
	if err != nil {
		t.Fatalf("Kueue controller %s (%s) does not answer: %v (deploy/dev/kueue.sh start; log in .dev/run/kueue/kueue.log)", base, EnvKueue, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Kueue controller %s/readyz answered %s", base, resp.Status)
	}
}

func requireHealthy(t testing.TB, name string) {
	t.Helper()
	base := env(t, name)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // health probe only
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("%s (%s) is not healthy: %v (%s)", base, name, err, hint)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s/healthz (%s) answered %s (%s)", base, name, resp.Status, hint)
	}
}

func env(t testing.TB, name string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		t.Fatalf("%s is not set: %s", name, hint)
	}
	return v
}

// Scope is one test's slice of the cluster: a namespace of its own and an id on every node and
// cluster-scoped object it creates. Everything is deleted when the test ends.
type Scope struct {
	*Env
	T testing.TB
	// ID is unique per scope: the value of LabelTest on its nodes and the suffix of its Kueue
	// objects' names.
	ID string
	// Namespace is created for the scope (named after the test).
	Namespace string

	nodeSeq int
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// NewScope connects (Connect) and creates the scope's namespace.
func NewScope(t testing.TB) *Scope {
	t.Helper()
	e := Connect(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	base := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	ns := base + "-" + id
	s := &Scope{Env: e, T: t, ID: id, Namespace: ns}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{LabelTest: id}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("deleting namespace %s: %v", ns, err)
		}
	})
	return s
}

// Context returns a context cancelled when the test ends.
func (s *Scope) Context() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	s.T.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond every 200 ms until it returns true, an error, or timeout passes; on timeout
// it fails the test naming what it waited for and the last state cond described.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (done bool, state string, err error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var state string
	for {
		done, st, err := cond(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if done {
			return
		}
		state = st
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: not done within %s; last state: %s", what, timeout, state)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Describe is a compact "name phase node" list of pods for failure messages.
func Describe(pods []corev1.Pod) string {
	var b strings.Builder
	for i, p := range pods {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", p.Name, p.Status.Phase)
		if p.Spec.NodeName != "" {
			fmt.Fprintf(&b, " on %s", p.Spec.NodeName)
		}
		if p.DeletionTimestamp != nil {
			b.WriteString(" (terminating)")
		}
	}
	if b.Len() == 0 {
		return "no pods"
	}
	return b.String()
}
