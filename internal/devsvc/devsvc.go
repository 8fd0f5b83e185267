// Package devsvc gives integration tests the endpoints of the real services that
// deploy/dev/services.sh starts (Kafka, HDFS, kube-apiserver, the Python venv, prometheus),
// and nats-server), read from the environment that `source .dev/services.env` sets.
//
// Every accessor fails the test with the reason when its variable is unset: a test that
// needs a real service never skips silently.
package devsvc

import (
	"os"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/internal/natsbus"
)

// The environment variables deploy/dev/services.sh writes to .dev/services.env.
const (
	EnvKafkaBrokers      = "EBBFLOW_TEST_KAFKA_BROKERS"
	EnvHDFSNamenode      = "EBBFLOW_TEST_HDFS_NAMENODE"
	EnvKubeServer        = "EBBFLOW_TEST_KUBE_SERVER"
	EnvKubeCA            = "EBBFLOW_TEST_KUBE_CA"
	EnvKubeAdminToken    = "EBBFLOW_TEST_KUBE_ADMIN_TOKEN"
	EnvKubeActuatorToken = "EBBFLOW_TEST_KUBE_ACTUATOR_TOKEN"
	EnvPython            = "EBBFLOW_TEST_PYTHON"
	EnvPrometheus        = "EBBFLOW_TEST_PROMETHEUS"
	EnvNATSURL           = "EBBFLOW_TEST_NATS_URL"
	EnvNATSCA            = "EBBFLOW_TEST_NATS_CA"
	EnvNATSUser          = "EBBFLOW_TEST_NATS_USER"
	EnvNATSPassword      = "EBBFLOW_TEST_NATS_PASSWORD"
)

// hint is appended to every "unset" failure.
const hint = "start the real services with `deploy/dev/services.sh up` and `source .dev/services.env`"

// Env returns the variable's value and fails the test when it is unset or empty.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		t.Fatalf("%s is not set: %s", name, hint)
	}
	return v
}

// KafkaBrokers returns the brokers of the real Kafka (EBBFLOW_TEST_KAFKA_BROKERS, comma-separated).
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, b := range strings.Split(Env(t, EnvKafkaBrokers), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// HDFSNamenode returns host:port of the real HDFS NameNode.
func HDFSNamenode(t testing.TB) string {
	t.Helper()
	return Env(t, EnvHDFSNamenode)
}

// HDFSUser is the user HDFS clients act as: HADOOP_USER_NAME, else "root" (the dev NameNode
// runs with permissions off).
func HDFSUser() string {
	if u := os.Getenv("HADOOP_USER_NAME"); u != "" {
		return u
	}
	return "root"
}

// Python returns the venv interpreter with deploy/dev/requirements.txt installed.
func Python(t testing.TB) string {
	t.Helper()
	p := Env(t, EnvPython)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v (run deploy/dev/venv.sh)", EnvPython, p, err)
	}
	return p
}

// Prometheus returns the prometheus binary tests start with their own config.
func Prometheus(t testing.TB) string {
	t.Helper()
	p := Env(t, EnvPrometheus)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v (run deploy/dev/prometheus.sh)", EnvPrometheus, p, err)
	}
	return p
}

// Kube is the real kube-apiserver and its two identities.
type Kube struct {
	Server string
	// CAFile verifies the serving certificate; empty means skip verification.
	CAFile        string
	AdminToken    string // user ebbflow-admin, group system:masters
	ActuatorToken string // system:serviceaccount:ebbflow:ebbflow-actuator
}

// KubeEnv reads the kube-apiserver variables; EBBFLOW_TEST_KUBE_CA may be empty.
func KubeEnv(t testing.TB) Kube {
	t.Helper()
	return Kube{
		Server:        Env(t, EnvKubeServer),
		CAFile:        strings.TrimSpace(os.Getenv(EnvKubeCA)),
		AdminToken:    Env(t, EnvKubeAdminToken),
		ActuatorToken: Env(t, EnvKubeActuatorToken),
	}
}

// RESTConfig is a client configuration for the server authenticating with token.
func (k Kube) RESTConfig(token string) *rest.Config {
	c := &rest.Config{Host: k.Server, BearerToken: token, QPS: 50, Burst: 100}
	if k.CAFile != "" {
		c.TLSClientConfig.CAFile = k.CAFile
	} else {
		c.TLSClientConfig.Insecure = true
	}
	return c
}

// Clientset returns a clientset authenticating with token, failing the test on error.
func (k Kube) Clientset(t testing.TB, token string) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(k.RESTConfig(token))
	if err != nil {
		t.Fatalf("kube client for %s: %v", k.Server, err)
	}
	return cs
}

// NATS returns the nats section for the real nats-server deploy/dev/nats.sh runs: its tls://
// URL, the dev CA that signed its certificate, and the user of the EBBFLOW account (JetStream on).
func NATS(t testing.TB) natsbus.Config {
	t.Helper()
	c := natsbus.DefaultConfig()
	c.URL = Env(t, EnvNATSURL)
	c.TLS.Enabled = true
	c.TLS.CAFile = Env(t, EnvNATSCA)
	c.User = Env(t, EnvNATSUser)
	c.Password = Env(t, EnvNATSPassword)
	return c
}
