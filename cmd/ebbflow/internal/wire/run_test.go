package wire

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/telemetry"
)

// events records what happened, in order, across goroutines.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, s)
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

func testEnv(t *testing.T) (*Env, *prometheus.Registry, net.Listener) {
	t.Helper()
	cfg := Default()
	cfg.Telemetry.Listen = ""
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := telemetry.NewRegistry()
	return &Env{Cfg: cfg, Log: telemetry.NewLogger(cfg.Telemetry, io.Discard), Reg: reg, Ready: &telemetry.Readiness{}}, reg, ln
}

func up(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// blocking is a component that runs until cancelled, recording its stop
// and whether the telemetry server still answered then.
func blocking(name string, ev *events, url string) Component {
	return Component{Name: name, Run: func(ctx context.Context, e *Env) error {
		ev.add("start " + name)
		<-ctx.Done()
		ev.add("stop " + name + map[bool]string{true: " (telemetry up)", false: " (telemetry down)"}[up(url)])
		return ctx.Err()
	}}
}

// TestRunStopsInReverseOrder: the foreground ends first; the components
// are then cancelled while the telemetry server still serves; a clean
// foreground end is no error, and the server is down after Run.
func TestRunStopsInReverseOrder(t *testing.T) {
	e, reg, ln := testEnv(t)
	url := "http://" + ln.Addr().String() + "/metrics"
	var ev events
	fg := func(ctx context.Context) error {
		deadline := time.Now().Add(2 * time.Minute)
		for !(len(ev.list()) == 2 && up(url)) {
			if time.Now().After(deadline) {
				return errors.New("components or telemetry never started")
			}
			time.Sleep(10 * time.Millisecond)
		}
		ev.add("foreground done")
		return nil
	}
	err := Run(context.Background(), e, reg, RunOptions{Telemetry: ln, Foreground: fg}, blocking("a", &ev, url), blocking("b", &ev, url))
	if err != nil {
		t.Fatal(err)
	}
	got := ev.list()
	if len(got) != 5 || got[2] != "foreground done" {
		t.Fatalf("events %q, want both starts, the foreground, then both stops", got)
	}
	for _, s := range got[3:] {
		if !strings.HasSuffix(s, "(telemetry up)") {
			t.Errorf("%q: a component stopped after the telemetry server", s)
		}
	}
	if up(url) {
		t.Error("telemetry server still up after Run")
	}
}

// TestRunJoinsErrors: a failing component ends the run; its error and the
// foreground's are both returned, each named.
func TestRunJoinsErrors(t *testing.T) {
	e, reg, ln := testEnv(t)
	boom := errors.New("boom")
	fail := Component{Name: "fail", Run: func(context.Context, *Env) error { return boom }}
	idle := Component{Name: "idle", Run: func(ctx context.Context, _ *Env) error { <-ctx.Done(); return ctx.Err() }}
	fgErr := errors.New("foreground saw the end")
	fg := func(ctx context.Context) error { <-ctx.Done(); return fgErr }
	err := Run(context.Background(), e, reg, RunOptions{Telemetry: ln, Foreground: fg}, fail, idle)
	if !errors.Is(err, boom) || !errors.Is(err, fgErr) || !strings.Contains(err.Error(), "fail: boom") {
		t.Fatalf("err %v, want the component's and the foreground's", err)
	}
}

// TestRunEndsCleanlyWithCtx: a cancelled ctx ends everything, no error.
func TestRunEndsCleanlyWithCtx(t *testing.T) {
	e, reg, ln := testEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	idle := Component{Name: "idle", Run: func(ctx context.Context, _ *Env) error { cancel(); <-ctx.Done(); return ctx.Err() }}
	if err := Run(ctx, e, reg, RunOptions{Telemetry: ln}, idle); err != nil {
		t.Fatalf("err %v, want nil after ctx ended", err)
	}
}

// TestRunTelemetryListenError is returned, naming the address, and no
// component starts.
func TestRunTelemetryListenError(t *testing.T) {
	e, reg, ln := testEnv(t)
	defer ln.Close()
	e.Cfg.Telemetry.Listen = ln.Addr().String() // taken
	started := false
	c := Component{Name: "c", Run: func(context.Context, *Env) error { started = true; return nil }}
	err := Run(context.Background(), e, reg, RunOptions{}, c)
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || started {
		t.Fatalf("err %v started %v, want a listen error naming the address", err, started)
	}
}
