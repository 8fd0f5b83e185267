package actuators

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ebbflow/ebbflow/schemas"
)

// The scale handler's tests, with the framework around it, are in
// actuators/scale; these test the framework with stand-in handlers.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// missingTarget is a handler whose every target does not exist: Apply
// fails with a 404, which is not retried.
type missingTarget struct{}

func (missingTarget) Decode(b []byte) (Decision, error) {
	id := string(b)
	return Decision{Kind: schemas.DecisionScale, ID: id, Seq: 1,
		Target: schemas.Target{Cluster: "c1", Namespace: "prod", Kind: "Deployment", Name: id}}, nil
}

func (missingTarget) Apply(_ context.Context, d Decision) (schemas.Action, error) {
	return schemas.Action{}, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, d.Target.Name)
}

const missingType = "io.ebbflow.test.missing.v1"

func TestNewActuatorNeedsHandlers(t *testing.T) {
	for _, reg := range []*Registry{nil, NewRegistry()} {
		if _, err := NewActuator(DefaultConfig(), "c1", "x", nil, reg, nil, quiet, nil); err == nil || !strings.Contains(err.Error(), "no handlers") {
			t.Errorf("registry %v: err %v, want no handlers", reg, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.RateLimit = 0 }, "rate_limit"},
		{func(c *Config) { c.Retry.Attempts = 0 }, "retry.attempts"},
		{func(c *Config) { c.Retry.MaxBackoff = time.Millisecond }, "retry.initial_backoff"},
		{func(c *Config) { c.LeaderElection.RenewDeadline = time.Minute }, "leader_election"},
		{func(c *Config) { c.InitialOffset = "x" }, "initial_offset"},
		{func(c *Config) { c.MaxReplicas = 0 }, "max_replicas"},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("err %v, want prefix %q", err, tc.want)
		}
	}
	if DefaultConfig().Group("east") != "ebbflow-actuate-east" {
		t.Error("default group per cluster")
	}
}
