//go:build integration

package dev

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ebbflow/ebbflow/internal/telemetry"
)

// chromiumPath is EBBFLOW_TEST_CHROMIUM, else chromium on PATH; the test
// fails (never skips) without one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EBBFLOW_TEST_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("EBBFLOW_TEST_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is missing (install it with deploy/dev/chromium.sh, or set EBBFLOW_TEST_CHROMIUM): %v", err)
	}
	return p
}

var uiLine = regexp.MustCompile(`web UI\s+(http://\S+)`)

// TestUIInBrowser runs `ebbflow dev` in process, opens its web UI in a
// headless chromium, follows the overview to a service, checks the load
// chart and a decision's reason render, waits for a live update over
// server-sent events, and saves a screenshot to the test's output.
func TestUIInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	cfg := testConfig(t)
	cfg.UI.Listen = "127.0.0.1:0"
	cfg.Dev.Step = 60 * time.Second
	cfg.Dev.StartupDelay = 90 * time.Second
	cfg.Dev.Services = 3
	opts := Options{Speed: "120x", Headless: true,
		Start: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	opts.Logger = telemetry.NewLogger(cfg.Telemetry, io.Discard)
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := Run(runCtx, cfg, opts, &out)
		done <- err
	}()
	defer func() {
		stopRun()
		if err := <-done; err != nil {
			t.Errorf("dev run: %v", err)
		}
	}()

	// The UI's address is printed at start.
	var base string
	for deadline := time.Now().Add(2 * time.Minute); base == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if m := uiLine.FindStringSubmatch(out.String()); m != nil {
			base = strings.TrimSuffix(m[1], "/")
		}
		select {
		case err := <-done:
			t.Fatalf("dev ended before printing the UI: %v\n%s", err, out.String())
		default:
		}
	}
	if base == "" {
		t.Fatalf("no web UI address printed:\n%s", out.String())
	}
	t.Logf("web UI at %s", base)

	// Wait (over plain HTTP) until a service has a decision, so the browser
	// has something to follow.
	var overview string
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		resp, err := http.Get(base + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			overview = string(b)
			if strings.Contains(overview, "#d-") && strings.Contains(overview, "/service?entity=") {
				break
			}
		}
	}
	if !strings.Contains(overview, "#d-") {
		t.Fatalf("no decision on the overview after 4 minutes:\n%s", overview)
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	// Overview → the first service's link (keyboard path: focus it, Enter).
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css(`a[href^="/service?entity="]`)),
	); err != nil {
		t.Fatalf("overview: %v", err)
	}
	if title, err := chromedp.Run(bctx, chromedp.Title()); err != nil || title != "Overview · ebbflow" {
		t.Errorf("overview title %q %v", title, err)
	}
	overviewPNG, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx,
		chromedp.Focus(css(`tbody th a[href^="/service?entity="]`)),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(css(`svg.chart polyline[data-series="actual qps"]`)),
	); err != nil {
		t.Fatalf("overview → service: %v", err)
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil || !strings.Contains(loc, "/service?entity=") {
		t.Fatalf("not on a service page: %s %v", loc, err)
	}
	points, err := chromedp.Run(bctx, chromedp.AttributeValue(css(`svg.chart polyline[data-series="actual qps"]`), "points"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(points.Value)); n < 2 {
		t.Errorf("the load chart has %d points", n)
	}
	forecasts, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.chart polyline[data-series^="forecast +"]').length`))
	if err != nil || forecasts == 0 {
		t.Errorf("the load chart has no forecast line (%v)", err)
	}
	// A decision's reason on the timeline (a service may not have decided
	// yet: then its first decision arrives live).
	if err := chromedp.Do(bctx, chromedp.WaitVisible(css(`li.decision .reason`))); err != nil {
		t.Fatalf("no decision reason: %v", err)
	}
	reason, err := chromedp.Run(bctx, chromedp.Text(css(`li.decision .reason`)))
	if err != nil || strings.TrimSpace(reason) == "" {
		t.Errorf("a decision without its reason: %q %v", reason, err)
	}

	// A live update: the event stream makes the page swap in a fresh
	// fragment (live.js counts them in body[data-updates]).
	var updates, status string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if updates, err = chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.dataset.updates || ""`)); err != nil {
			t.Fatal(err)
		}
		if status, err = chromedp.Run(bctx, chromedp.Text(css(`#live`))); err != nil {
			t.Fatal(err)
		}
		if updates != "" {
			break
		}
	}
	if updates == "" {
		t.Fatalf("no live update arrived in 2 minutes (status %q)", status)
	}
	if !strings.Contains(status, "on") {
		t.Errorf("live status %q", status)
	}
	// By now forecasts of the first horizon have been scored against the
	// windows that followed them (forecast error against last value).
	scored, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(function(){var r=document.querySelector('#h-error ~ table tbody tr');return r?r.innerText:""})()`))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(scored); len(f) < 4 || f[2] == "0" {
		t.Errorf("no forecast scored against the actual load: %q", scored)
	}
	t.Logf("forecast error row: %q", scored)
	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.ArtifactDir()
	shot := filepath.Join(dir, "ui-service.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ui-overview.png"), overviewPNG, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes), %s live updates, reason %q", shot, len(png), updates, reason)
	if p := os.Getenv("EBBFLOW_UI_SCREENSHOT"); p != "" {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(strings.TrimSuffix(p, ".png")+"-overview.png", overviewPNG, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
