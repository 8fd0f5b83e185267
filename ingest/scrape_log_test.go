package ingest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordHandler keeps every slog record it is given, at every level.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) snapshot() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), h.recs...)
}

func recAttr(r slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	return v, found
}

// TestScrapeLogsStateChangesOnly: a target that answers 503 for its first
// N scrapes (a pod starting) and then serves its metrics gives one WARN
// when it goes down and one INFO with the count of failed attempts when
// it comes up; each failed attempt is only a DEBUG record and a count in
// ebbflow_ingest_scrape_failures_total{reason="http_status"}.
func TestScrapeLogsStateChangesOnly(t *testing.T) {
	const failures = 5
	triton := readFixture(t, "triton.txt")
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= failures {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, triton)
	}))
	defer srv.Close()

	cfg := DefaultConfig().Scrape
	cfg.Interval, cfg.Timeout, cfg.MaxConcurrent = 20*time.Millisecond, 2*time.Second, 1
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	m := NewMetrics(nil)
	h := &recordHandler{}
	s := NewScraper(cfg, mp, &fakeSink{}, m, slog.New(h))
	s.SetTargets("static", []Target{{URL: srv.URL, Labels: map[string]string{"namespace": "prod", "pod": "p"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(2 * time.Minute)
	for counterValue(t, m.Scrapes.WithLabelValues("ok")) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("target never came up: %d calls", calls.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	var warns, infos, debugs []slog.Record
	for _, r := range h.snapshot() {
		switch r.Level {
		case slog.LevelWarn:
			warns = append(warns, r)
		case slog.LevelInfo:
			infos = append(infos, r)
		case slog.LevelDebug:
			if r.Message == "scrape failed" {
				debugs = append(debugs, r)
			}
		default:
			t.Errorf("unexpected %s record %q", r.Level, r.Message)
		}
	}
	if len(warns) != 1 || warns[0].Message != "scrape target down" {
		t.Fatalf("WARN records = %v, want one \"scrape target down\"", warns)
	}
	if len(infos) != 1 || infos[0].Message != "scrape target up" {
		t.Fatalf("INFO records = %v, want one \"scrape target up\"", infos)
	}
	if v, ok := recAttr(infos[0], "failed_attempts"); !ok || v.Int64() != failures {
		t.Errorf("recovery failed_attempts = %v, want %d", v, failures)
	}
	if v, ok := recAttr(infos[0], "down_for"); !ok || v.Duration() <= 0 {
		t.Errorf("recovery down_for = %v, want > 0", v)
	}
	if len(debugs) != failures {
		t.Errorf("DEBUG \"scrape failed\" records = %d, want %d", len(debugs), failures)
	}
	if got := counterValue(t, m.ScrapeFailures.WithLabelValues(ScrapeHTTPStatus)); got != failures {
		t.Errorf("ebbflow_ingest_scrape_failures_total{reason=http_status} = %v, want %d", got, failures)
	}
}

// TestScrapeReason classifies fetch errors for the failures counter.
func TestScrapeReason(t *testing.T) {
	cfg := DefaultConfig().Scrape
	s := NewScraper(cfg, nil, nil, NewMetrics(nil), quietLog())
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "not { an exposition\n") }))
	defer bad.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	for _, tc := range []struct {
		url  string
		want string
	}{{closedURL, ScrapeConnection}, {bad.URL, ScrapeParse}, {slow.URL, ScrapeTimeout}} {
		_, err := s.fetch(context.Background(), Target{URL: tc.url, Timeout: 100 * time.Millisecond}, time.Now())
		if err == nil {
			t.Fatalf("%s: no error", tc.url)
		}
		if got := scrapeReason(err); got != tc.want {
			t.Errorf("%s: reason %q, want %q (err %v)", tc.url, got, tc.want, err)
		}
	}
}
