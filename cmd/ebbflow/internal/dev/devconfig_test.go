package dev

import (
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

// TestDevActsAsItsOwnIdentity: the simulated cluster's fake clientset has
// no identities, so dev clears what the handlers would impersonate.
func TestDevActsAsItsOwnIdentity(t *testing.T) {
	def := wire.Default()
	if def.Servers.Impersonate == "" || def.Mixing.Actuator.Impersonate == "" {
		t.Fatalf("defaults impersonate nobody (servers %q, mixing.actuator %q)", def.Servers.Impersonate, def.Mixing.Actuator.Impersonate)
	}
	cfg := devConfig(def, time.Second)
	if cfg.Servers.Impersonate != "" || cfg.Mixing.Actuator.Impersonate != "" {
		t.Fatalf("dev impersonates (servers %q, mixing.actuator %q)", cfg.Servers.Impersonate, cfg.Mixing.Actuator.Impersonate)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("dev config: %v", err)
	}
}
