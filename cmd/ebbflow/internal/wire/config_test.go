package wire

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ebbflow/ebbflow/internal/config"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ebbflow.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("the documented defaults do not validate: %v", err)
	}
}

func TestDefaultsRoundTripThroughYAML(t *testing.T) {
	b, err := Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(Options{File: writeFile(t, string(b))})
	if err != nil {
		t.Fatalf("`ebbflow config defaults` output does not load: %v", err)
	}
	// Compare as YAML: an empty list in the file decodes as an empty,
	// not a nil, slice, which is the same configuration.
	again, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(b) {
		t.Errorf("defaults changed after a YAML round trip:\n%s\nvs\n%s", again, b)
	}
}

func TestLoadRejectsAndNames(t *testing.T) {
	cases := []struct {
		name, file string
		want       []string
	}{
		{"unknown field", "kafka:\n  brokerz: [a:1]\n", []string{"line 2", "brokerz"}},
		{"unknown section", "kafak:\n  brokers: [a:1]\n", []string{"kafak"}},
		{"bad value", "kafka:\n  brokers: [nohostport]\n", []string{"kafka.brokers", "nohostport"}},
		{"bad type", "kafka:\n  partitions: many\n", []string{"line 2", "many"}},
		{"bad enum", "history:\n  backend: s3\n", []string{"history.backend", "s3"}},
		{"bad duration", "nats:\n  max_age: soon\n", []string{"soon"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(Options{File: writeFile(t, c.file)})
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPrecedenceFileEnvSet(t *testing.T) {
	file := writeFile(t, "kafka:\n  brokers: [file:1]\n  client_id: from-file\n  partitions: 3\nnats:\n  max_age: 1h\n")
	env := []string{
		"EBBFLOW_KAFKA_CLIENT_ID=from-env",
		"EBBFLOW_KAFKA_PARTITIONS=5",
		"EBBFLOW_NATS_MAX_AGE=2h",
		"EBBFLOW_TEST_KAFKA_BROKERS=ignored:1", // belongs to the test scripts
		"PATH=/bin",
	}
	c, err := Load(Options{File: file, Env: env, Sets: []string{"kafka.partitions=7", "kafka.brokers=a:1, b:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.ClientID != "from-env" {
		t.Errorf("client_id = %q, want the environment's", c.Kafka.ClientID)
	}
	if c.Kafka.Partitions != 7 {
		t.Errorf("partitions = %d, want --set's 7", c.Kafka.Partitions)
	}
	if strings.Join(c.Kafka.Brokers, ",") != "a:1,b:2" {
		t.Errorf("brokers = %v", c.Kafka.Brokers)
	}
	if c.NATS.MaxAge != 2*time.Hour {
		t.Errorf("max_age = %v", c.NATS.MaxAge)
	}
	if c.Kafka.Version != Default().Kafka.Version {
		t.Errorf("an unset field lost its default: version = %q", c.Kafka.Version)
	}
}

func TestSetErrors(t *testing.T) {
	c := Default()
	for _, s := range []string{"kafka.nope=1", "kafka.partitions=x", "nope.x=1", "kafka.tls.enabled.deeper=1"} {
		path, val, _ := strings.Cut(s, "=")
		if err := Set(&c, path, val); err == nil {
			t.Errorf("Set(%s) succeeded", s)
		}
	}
	if _, err := Load(Options{Sets: []string{"kafka.partitions"}}); err == nil {
		t.Error("a --set without = loaded")
	}
	// A value that parses but is invalid is caught by validation.
	if _, err := Load(Options{Sets: []string{"telemetry.log_level=loud"}}); err == nil || !strings.Contains(err.Error(), "telemetry.log_level") {
		t.Errorf("invalid --set value: %v", err)
	}
}

func TestEnvPathMatchesLongestName(t *testing.T) {
	ty := reflect.TypeOf(Config{})
	for env, want := range map[string]string{
		"KAFKA_CLIENT_ID":                "kafka.client_id",
		"KAFKA_TLS_INSECURE_SKIP_VERIFY": "kafka.tls.insecure_skip_verify",
		"KUBERNETES_TOKEN_FILE":          "kubernetes.token_file",
	} {
		got, ok := config.EnvPath(ty, strings.Split(env, "_"))
		if !ok || got != want {
			t.Errorf("%s → %q (%v), want %q", env, got, ok, want)
		}
	}
	if _, ok := config.EnvPath(ty, []string{"TEST", "KAFKA", "BROKERS"}); ok {
		t.Error("EBBFLOW_TEST_* mapped to a field")
	}
}

// TestDeployConfigMapIsValid keeps the configurations deploy/kubernetes
// ships true (the base's ConfigMap and each overlay's config.yaml): they
// load and validate, and the environment overrides the Deployments set
// name real fields.
func TestDeployConfigMapIsValid(t *testing.T) {
	const root = "../../../../deploy/kubernetes/"
	b, err := os.ReadFile(root + "base/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	body, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatal("configmap has no config.yaml")
	}
	if _, err := Load(Options{File: writeFile(t, body)}); err != nil {
		t.Fatalf("deploy/kubernetes/base/configmap.yaml: %v", err)
	}
	overlayConfigs, _ := filepath.Glob(root + "overlays/*/config.yaml")
	if len(overlayConfigs) == 0 {
		t.Fatal("no overlay config.yaml found")
	}
	for _, f := range overlayConfigs {
		if _, err := Load(Options{File: f}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	manifests, _ := filepath.Glob(root + "base/*.yaml")
	overlayManifests, _ := filepath.Glob(root + "overlays/*/*.yaml")
	manifests = append(manifests, overlayManifests...)
	ty := reflect.TypeOf(Config{})
	for _, m := range manifests {
		mb, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(mb), "\n") {
			_, after, ok := strings.Cut(line, "name: "+config.EnvPrefix)
			if !ok {
				continue
			}
			name := strings.Fields(after)[0]
			if _, ok := config.EnvPath(ty, strings.Split(name, "_")); !ok {
				t.Errorf("%s sets %s%s, which names no configuration field", filepath.Base(m), config.EnvPrefix, name)
			}
		}
	}
}
