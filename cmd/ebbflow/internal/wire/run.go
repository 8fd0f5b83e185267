package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/telemetry"
)

// Serve is the one process lifecycle of every component subcommand.
//
// Start, in this order: the logger, registry and readiness; the NATS
// connection (when nats.url is set); the telemetry server (/metrics,
// /healthz, /readyz — /readyz fails until the components' checks pass);
// then the components, each with its own log component.
//
// Stop, in the reverse order: when ctx ends, a component returns or the
// telemetry server fails, every component is cancelled and awaited; then
// the telemetry server is shut down (so /metrics shows the last counts
// until the components are done); then NATS is closed. Every error is
// returned, joined; an end caused by ctx is not an error.
func Serve(ctx context.Context, cfg Config, stderr io.Writer, comps ...Component) error {
	log := telemetry.NewLogger(cfg.Telemetry, stderr)
	reg := telemetry.NewRegistry()
	e := &Env{Cfg: cfg, Log: log, Reg: reg, Ready: &telemetry.Readiness{}, Kube: lazyKube(cfg)}
	if cfg.NATS.URL != "" {
		name := "ebbflow"
		if len(comps) == 1 {
			name += "-" + comps[0].Name
		}
		nc, js, err := natsbus.ConnectJetStream(cfg.NATS, name)
		if err != nil {
			return err
		}
		defer nc.Close()
		e.JetStream = js
	}

	compCtx, stopComps := context.WithCancel(ctx)
	defer stopComps()
	telCtx, stopTel := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTel()
	telErr := make(chan error, 1)
	go func() {
		err := telemetry.Serve(telCtx, cfg.Telemetry.Listen, telemetry.Handler(reg, e.Ready), log)
		if err != nil {
			stopComps()
		}
		telErr <- err
	}()
	err := RunAll(compCtx, e, comps...)
	stopTel()
	err = errors.Join(err, <-telErr)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// RunAll runs comps concurrently, each with Log carrying its component
// name, until ctx ends or one returns; then it cancels the others, waits
// for all and returns every error except the cancellations it caused
// (prefixed with the component's name when there are several).
func RunAll(ctx context.Context, e *Env, comps ...Component) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range comps {
		ce := *e
		ce.Log = e.Log.With("component", c.Name)
		wg.Go(func() {
			err := c.Run(ctx, &ce)
			stopping := ctx.Err() != nil
			cancel()
			if err == nil || (stopping && errors.Is(err, context.Canceled)) {
				return
			}
			if len(comps) > 1 {
				err = fmt.Errorf("%s: %w", c.Name, err)
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// lazyKube builds the Kubernetes clientset once, on first use.
func lazyKube(cfg Config) func() (kubernetes.Interface, error) {
	var (
		once sync.Once
		cs   kubernetes.Interface
		err  error
	)
	return func() (kubernetes.Interface, error) {
		once.Do(func() { cs, err = cfg.Kubernetes.Clientset() })
		return cs, err
	}
}
