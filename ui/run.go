package ui

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/kafkax"
)

// Deps are what Run needs besides its section.
type Deps struct {
	Kafka kafkax.Config
	// JetStream reads the alerts stream; nil: no alerts.
	JetStream jetstream.JetStream
	Sources   Sources
	Log       *slog.Logger
	Registry  prometheus.Registerer
	// Listener, when set, is used instead of listening on cfg.Listen
	// (`ebbflow dev` opens it to print the address first).
	Listener net.Listener
	// Ready is called once the server listens and the consumer started.
	Ready func(addr string)
}

// Listen opens the UI's listener on addr.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ui: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// URL is the address to print for ln.
func URL(cfg Config, ln net.Listener) string {
	scheme := "http"
	if cfg.TLSEnabled() {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String() + "/"
}

// Run serves the UI and feeds its store from the topics (and alerts)
// until ctx ends or the server or the consumer fails.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	store := NewStore(cfg.PerService, cfg.Recent)
	srv, err := NewServer(cfg, store, deps.Sources, deps.Log, deps.Registry)
	if err != nil {
		return err
	}
	ln := deps.Listener
	if ln == nil {
		if ln, err = Listen(cfg.Listen); err != nil {
			return err
		}
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(deps.Log.Handler(), slog.LevelWarn)}
	if cfg.TLSEnabled() {
		tc, err := cfg.TLS.Server("ui.tls")
		if err != nil {
			ln.Close()
			return err
		}
		hs.TLSConfig = tc
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Event streams end with ctx.
	hs.BaseContext = func(net.Listener) context.Context { return ctx }
	errs := make(chan error, 3)
	go func() {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errs <- err
	}()
	go func() { errs <- Consume(ctx, deps.Kafka, cfg.Backfill, store, deps.Log) }()
	n := 2
	if cfg.Alerts && deps.JetStream != nil {
		n++
		go func() {
			if err := ConsumeAlerts(ctx, deps.JetStream, store, deps.Log); err != nil {
				deps.Log.Warn("ui: no alerts", "err", err)
			}
			errs <- nil
		}()
	}
	deps.Log.Info("ui serving", "url", URL(cfg, ln))
	if deps.Ready != nil {
		deps.Ready(URL(cfg, ln))
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
		n--
	}
	cancel()
	shCtx, shCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer shCancel()
	_ = hs.Shutdown(shCtx)
	for ; n > 0; n-- {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
