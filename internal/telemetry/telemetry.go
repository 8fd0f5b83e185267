// Package telemetry sets up what every component exposes about itself:
// structured logs (log/slog), Prometheus metrics on /metrics, and /healthz
// and /readyz.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is the `telemetry` section of the configuration file.
type Config struct {
	// Listen is the address of /metrics, /healthz and /readyz; empty disables it.
	Listen string `yaml:"listen"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log_format"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:9464", LogLevel: "info", LogFormat: "text"}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if _, err := parseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log_format: %q is not text or json", c.LogFormat)
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return l, fmt.Errorf("%q is not debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns the process logger writing to w (stderr when nil).
func NewLogger(c Config, w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	lvl, err := parseLevel(c.LogLevel)
	if err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Readiness collects named readiness checks. It is safe for concurrent use.
type Readiness struct {
	mu     sync.Mutex
	checks map[string]func() error
}

// Add registers a check; /readyz fails while any check returns an error.
func (r *Readiness) Add(name string, check func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[string]func() error{}
	}
	r.checks[name] = check
}

// Check runs every check and joins the failures.
func (r *Readiness) Check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for name, c := range r.checks {
		if err := c(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Handler returns the mux serving /metrics, /healthz and /readyz; extra
// handlers (such as a remote_write endpoint) can be added to it.
func Handler(reg *prometheus.Registry, ready *Readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready.Check(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Serve serves h on addr until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, log)
}

// ServeListener is Serve on a listener the caller opened (and may have
// told others the address of); it closes ln. ln nil waits for ctx.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if ln == nil {
		<-ctx.Done()
		return nil
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving telemetry", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: serve %s: %w", ln.Addr(), err)
	}
	return nil
}
