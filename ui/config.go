package ui

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/internal/tlsx"
)

// Config is the `ui` section: where the web UI listens, who may change the
// cluster through it, TLS, and how much it keeps in memory.
type Config struct {
	// Listen is the address of the web UI (`ebbflow ui`, and `ebbflow dev`
	// which falls back to a free port when it is taken).
	Listen string `yaml:"listen"`
	// Token is the bearer token a request that changes the cluster (a
	// form's POST) must carry, in an Authorization header or the form's
	// token field. Empty (and no token_file): the forms are refused.
	Token string `yaml:"token"`
	// TokenFile reads the token from a file (a mounted Secret) instead.
	TokenFile string `yaml:"token_file"`
	// RequireTokenForRead also requires the token (Authorization: Bearer)
	// on the read-only pages and the event stream.
	RequireTokenForRead bool `yaml:"require_token_for_read"`
	// TLS serves HTTPS when cert_file and key_file are set; ca_file then
	// also requires client certificates signed by it (mTLS).
	TLS tlsx.Files `yaml:"tls"`
	// PerService is how many events of each kind (windows, forecasts,
	// decisions) are kept per service; older ones are dropped.
	PerService int `yaml:"per_service"`
	// Recent is how many actions, alerts, node, training and inference
	// decisions are kept in all.
	Recent int `yaml:"recent"`
	// Backfill is how many records per partition are read back at start
	// (from the end of each topic), so the pages have history at once.
	Backfill int64 `yaml:"backfill"`
	// KubeTimeout bounds each read of the Kubernetes API a page makes.
	KubeTimeout time.Duration `yaml:"kube_timeout"`
	// Alerts reads the alerts stream from NATS JetStream (when nats.url is set).
	Alerts bool `yaml:"alerts"`
}

// TLSEnabled reports whether the UI serves HTTPS (both files set).
func (c Config) TLSEnabled() bool { return c.TLS.CertFile != "" && c.TLS.KeyFile != "" }

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8088", PerService: 720, Recent: 500, Backfill: 5000,
		KubeTimeout: 3 * time.Second, Alerts: true}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("listen: must not be empty")
	case c.Token != "" && c.TokenFile != "":
		return errors.New("token and token_file: set one, not both")
	case c.RequireTokenForRead && c.Token == "" && c.TokenFile == "":
		return errors.New("require_token_for_read: needs token or token_file")
	case c.TLS.Validate("tls") != nil:
		return c.TLS.Validate("tls")
	case c.PerService < 10:
		return fmt.Errorf("per_service: %d must be at least 10", c.PerService)
	case c.Recent < 10:
		return fmt.Errorf("recent: %d must be at least 10", c.Recent)
	case c.Backfill < 0:
		return fmt.Errorf("backfill: %d must not be negative", c.Backfill)
	case c.KubeTimeout <= 0:
		return errors.New("kube_timeout: must be positive")
	}
	return nil
}

// token returns the configured token ("" when none), reading token_file.
func (c Config) token() (string, error) {
	if c.TokenFile == "" {
		return c.Token, nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("ui.token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("ui.token_file: %s is empty", c.TokenFile)
	}
	return t, nil
}
