package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators/inference"

	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/telemetry"
)

// Serve is the one process lifecycle of every component subcommand.
//
// Start, in this order: the logger, registry and readiness; the NATS
// connection (when nats.url is set); then Run: the telemetry server
// (/metrics, /healthz, /readyz — /readyz fails until the components'
// checks pass) and the components, each with its own log component.
//
// Stop, in the reverse order: when ctx ends, a component returns or the
// telemetry server fails, every component is cancelled and awaited; then
// the telemetry server is shut down (so /metrics shows the last counts
// until the components are done); then NATS is closed. Every error is
// returned, joined; an end caused by ctx is not an error.
func Serve(ctx context.Context, cfg Config, stderr io.Writer, comps ...Component) error {
	log := telemetry.NewLogger(cfg.Telemetry, stderr)
	reg := telemetry.NewRegistry()
	e := &Env{Cfg: cfg, Log: log, Reg: reg, Ready: &telemetry.Readiness{}, Kube: lazyKube(cfg), KubeAs: kubeAs(cfg)}
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
	return Run(ctx, e, reg, RunOptions{}, comps...)
}

// RunOptions are the parts of a process that embeds the components
// (`ebbflow dev`) beyond what Serve starts.
type RunOptions struct {
	// Telemetry is the telemetry server's listener, opened by the caller
	// (dev prints its address first); nil: Run listens on
	// telemetry.listen ("" = no server).
	Telemetry net.Listener
	// Foreground, when set, runs beside the components once they are
	// started (dev: the simulated clock and the view); its return ends the
	// process. It is stopped first: its ctx ends when ctx does or a
	// component or the telemetry server ends.
	Foreground func(ctx context.Context) error
}

// Run is the shared part of the lifecycle, after the connections: it
// starts the telemetry server (serving reg and e.Ready), then the
// components (RunAll), then the foreground; it stops when ctx ends, a
// component returns, the telemetry server fails or the foreground
// returns, in the reverse order: the foreground (cancelled, awaited), the
// components (cancelled, awaited), the telemetry server. Every error is
// returned, joined; an end caused by ctx is not an error.
func Run(ctx context.Context, e *Env, reg *prometheus.Registry, o RunOptions, comps ...Component) error {
	ln := o.Telemetry
	if ln == nil && e.Cfg.Telemetry.Listen != "" {
		var err error
		if ln, err = net.Listen("tcp", e.Cfg.Telemetry.Listen); err != nil {
			return fmt.Errorf("telemetry: listen on %s: %w", e.Cfg.Telemetry.Listen, err)
		}
	}
	telCtx, stopTel := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTel()
	telDone := make(chan error, 1)
	go func() { telDone <- telemetry.ServeListener(telCtx, ln, telemetry.Handler(reg, e.Ready), e.Log) }()

	compCtx, stopComps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopComps()
	compDone := make(chan error, 1)
	go func() { compDone <- RunAll(compCtx, e, comps...) }()

	fgCtx, stopFg := context.WithCancel(ctx)
	defer stopFg()
	var fgDone chan error // nil: no foreground, never ready
	if o.Foreground != nil {
		fgDone = make(chan error, 1)
		go func() { fgDone <- o.Foreground(fgCtx) }()
	}

	var fgErr, compErr, telErr error
	fgOver, compOver, telOver := o.Foreground == nil, false, false
	select {
	case <-ctx.Done():
	case fgErr = <-fgDone:
		fgOver = true
	case compErr = <-compDone:
		compOver = true
	case telErr = <-telDone:
		telOver = true
	}
	stopFg()
	if !fgOver {
		fgErr = <-fgDone
	}
	stopComps()
	if !compOver {
		compErr = <-compDone
	}
	stopTel()
	if !telOver {
		telErr = <-telDone
	}
	err := errors.Join(fgErr, compErr, telErr)
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

// kubeAs builds clients acting as another identity from the configured
// connection.
func kubeAs(cfg Config) func(user string) (kubernetes.Interface, error) {
	return func(user string) (kubernetes.Interface, error) {
		rc, err := cfg.Kubernetes.RESTConfig()
		if err != nil {
			return nil, err
		}
		return inference.Client(rc, user)
	}
}
