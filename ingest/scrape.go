package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ebbflow/ebbflow/schemas"
)

// Target is one scrape target.
type Target struct {
	// URL is the metrics URL.
	URL string
	// Labels are attached to every scraped sample; job and instance are
	// added when missing.
	Labels map[string]string
	// Interval and Timeout are the scrape period and deadline.
	Interval, Timeout time.Duration
}

// key identifies a target across updates: a change of URL, labels or
// timing restarts its loop.
func (t Target) key() string {
	names := make([]string, 0, len(t.Labels))
	for n := range t.Labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s", t.URL, t.Interval, t.Timeout)
	for _, n := range names {
		fmt.Fprintf(&b, "|%s=%s", n, t.Labels[n])
	}
	return b.String()
}

// acceptHeader asks for protobuf first, then OpenMetrics, then text, as
// Prometheus does.
const acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1`

// Scraper scrapes targets on their intervals with bounded concurrency and
// per-target jitter, maps what they expose and publishes it. Targets come
// from named sources (static configuration, Kubernetes discovery) and can
// change at any time with SetTargets. A failing or slow target only ever
// costs its own loop and one concurrency slot for at most its timeout.
// Scraper is safe for concurrent use.
type Scraper struct {
	cfg    ScrapeConfig
	mapper *Mapper
	sink   Sink
	m      *Metrics
	log    *slog.Logger
	client *http.Client
	slots  chan struct{}
	meta   *MetadataWriter

	mu      sync.Mutex
	ctx     context.Context
	sources map[string][]Target
	loops   map[string]*scrapeLoop
	wg      sync.WaitGroup
}

type scrapeLoop struct {
	t      Target
	name   string
	cancel context.CancelFunc
	health targetHealth
	// last is each series' newest sample at the previous scrape (keyed
	// by a hash of its labels): see dropRepeats.
	last map[uint64]lastSample
}

type lastSample struct {
	ts int64
	v  float64
}

// dropRepeats removes the samples that repeat their series' previous one
// exactly, same timestamp and same value, and returns how many it
// removed. Only targets that expose explicit timestamps can repeat one
// (others are stamped with the scrape's start): such a target scraped
// twice before it moved on would otherwise be counted twice in its
// windows. Prometheus appends nothing for such a sample either. A sample
// whose value changed at the same timestamp, or that goes back in time,
// is kept (the window processor orders and judges it). Series gone from
// the scrape are forgotten.
func (l *scrapeLoop) dropRepeats(series []Series) int {
	seen := make(map[uint64]lastSample, len(series))
	dropped := 0
	for i := range series {
		h := labelsHash(series[i].Labels)
		prev, had := l.last[h]
		if p, ok := seen[h]; ok {
			prev, had = p, true // the same series twice in one exposition
		}
		kept := series[i].Samples[:0]
		for _, smp := range series[i].Samples {
			if had && smp.TimestampMs == prev.ts && (smp.Value == prev.v || math.IsNaN(smp.Value) && math.IsNaN(prev.v)) {
				dropped++
				continue
			}
			kept = append(kept, smp)
			prev, had = lastSample{smp.TimestampMs, smp.Value}, true
		}
		series[i].Samples = kept
		if had {
			seen[h] = prev
		}
	}
	l.last = seen
	return dropped
}

func labelsHash(ls []schemas.Label) uint64 {
	h := fnv.New64a()
	for _, l := range ls {
		h.Write([]byte(l.Name))
		h.Write([]byte{0})
		h.Write([]byte(l.Value))
		h.Write([]byte{1})
	}
	return h.Sum64()
}

// targetHealth follows one target's up/down state so that only its
// changes are logged, not every failed attempt.
type targetHealth struct {
	down      bool
	downSince time.Time
	failed    int // failed attempts since the target went down
}

// healthChange is what one scrape result changed.
type healthChange int

const (
	healthSame healthChange = iota
	healthWentDown
	healthCameUp
)

// observe records one scrape result at now and says whether the target's
// state changed. A target whose first scrape fails counts as going down.
// On healthCameUp, failed and downFor describe the outage just ended.
func (h *targetHealth) observe(now time.Time, ok bool) (c healthChange, failed int, downFor time.Duration) {
	wasDown := h.down
	if !ok {
		h.failed++
		if !wasDown {
			h.down, h.downSince = true, now
			return healthWentDown, h.failed, 0
		}
		return healthSame, h.failed, now.Sub(h.downSince)
	}
	if wasDown {
		failed, downFor = h.failed, now.Sub(h.downSince)
		h.down, h.failed = false, 0
		return healthCameUp, failed, downFor
	}
	return healthSame, 0, 0
}

// Reasons of ebbflow_ingest_scrape_failures_total.
const (
	ScrapeTimeout      = "timeout"
	ScrapeConnection   = "connection"
	ScrapeHTTPStatus   = "http_status"
	ScrapeBodyTooLarge = "body_too_large"
	ScrapeReadBody     = "read_body"
	ScrapeParse        = "parse"
)

var (
	errHTTPStatus = errors.New("unexpected HTTP status")
	errBodyTooBig = errors.New("body too large")
	errReadBody   = errors.New("read body")
)

// scrapeReason classifies a fetch error for the failures counter.
func scrapeReason(err error) string {
	switch {
	case errors.Is(err, errParse):
		return ScrapeParse
	case errors.Is(err, errHTTPStatus):
		return ScrapeHTTPStatus
	case errors.Is(err, errBodyTooBig):
		return ScrapeBodyTooLarge
	case errors.Is(err, errReadBody):
		return ScrapeReadBody
	case errors.Is(err, context.DeadlineExceeded):
		return ScrapeTimeout
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return ScrapeTimeout
	}
	return ScrapeConnection
}

// NewScraper returns a scraper; it scrapes nothing until Run.
func NewScraper(cfg ScrapeConfig, mapper *Mapper, sink Sink, m *Metrics, log *slog.Logger) *Scraper {
	return &Scraper{
		cfg: cfg, mapper: mapper, sink: sink, m: m, log: log,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 5 * time.Minute}},
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		sources: map[string][]Target{},
		loops:   map[string]*scrapeLoop{},
	}
}

// StaticTargets converts the configuration's static targets.
func StaticTargets(cfg ScrapeConfig) []Target {
	out := make([]Target, 0, len(cfg.Static))
	for _, st := range cfg.Static {
		t := Target{URL: st.URL, Labels: map[string]string{"job": "static"}, Interval: st.Interval, Timeout: st.Timeout}
		for k, v := range st.Labels {
			t.Labels[k] = v
		}
		out = append(out, t)
	}
	return out
}

// SetTargets replaces the targets of one source and starts or stops loops
// to match.
func (s *Scraper) SetTargets(source string, targets []Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources[source] = targets
	s.reconcile()
}

func (s *Scraper) reconcile() {
	if s.ctx == nil {
		return
	}
	want := map[string]Target{}
	for src, ts := range s.sources {
		for _, t := range ts {
			if t.Interval <= 0 {
				t.Interval = s.cfg.Interval
			}
			if t.Timeout <= 0 {
				t.Timeout = min(s.cfg.Timeout, t.Interval)
			}
			t.Labels = maps.Clone(t.Labels) // callers may share one map between targets
			if t.Labels == nil {
				t.Labels = map[string]string{}
			}
			if t.Labels["job"] == "" {
				t.Labels["job"] = src
			}
			if t.Labels["instance"] == "" {
				if u, err := url.Parse(t.URL); err == nil {
					t.Labels["instance"] = u.Host
				}
			}
			want[t.key()] = t
		}
	}
	for k, l := range s.loops {
		if _, ok := want[k]; !ok {
			l.cancel()
			delete(s.loops, k)
			s.m.TargetUp.DeleteLabelValues(l.name)
			s.m.ScrapeDuration.DeleteLabelValues(l.name)
			s.m.ScrapeSamples.DeleteLabelValues(l.name)
		}
	}
	for k, t := range want {
		if _, ok := s.loops[k]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(s.ctx)
		l := &scrapeLoop{t: t, name: t.Labels["job"] + "/" + t.URL, cancel: cancel}
		s.loops[k] = l
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx, l)
		}()
	}
	s.m.Targets.Set(float64(len(s.loops)))
}

// Run scrapes until ctx ends, then waits for every loop to stop.
func (s *Scraper) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.reconcile()
	s.mu.Unlock()
	<-ctx.Done()
	s.wg.Wait()
	return nil
}

// offset spreads targets over the interval deterministically (as
// Prometheus does), so restarts keep the phase and targets are not hit in
// lockstep.
func offset(key string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(key))
	return time.Duration(h.Sum64() % uint64(interval))
}

func (s *Scraper) loop(ctx context.Context, l *scrapeLoop) {
	next := time.Now().Add(offset(l.t.key(), l.t.Interval))
	batch := NewBatch()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		s.scrapeOnce(ctx, l, batch)
		// Keep the phase: skip missed ticks rather than bunching up.
		for next = next.Add(l.t.Interval); !next.After(time.Now()); next = next.Add(l.t.Interval) {
		}
	}
}

func (s *Scraper) scrapeOnce(ctx context.Context, l *scrapeLoop, batch *Batch) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	start := time.Now()
	series, err := s.fetch(ctx, l.t, start)
	<-s.slots
	dur := time.Since(start)
	if ctx.Err() != nil {
		return
	}
	up := 1.0
	change, failed, downFor := l.health.observe(start, err == nil)
	if err != nil {
		up = 0
		reason := scrapeReason(err)
		s.m.Scrapes.WithLabelValues("error").Inc()
		s.m.ScrapeFailures.WithLabelValues(reason).Inc()
		s.log.Debug("scrape failed", "target", l.name, "reason", reason, "failed_attempts", failed, "err", err)
		if change == healthWentDown {
			s.log.Warn("scrape target down", "target", l.name, "reason", reason, "err", err)
		}
		if errors.Is(err, errParse) {
			s.m.SamplesDropped.WithLabelValues(DropScrapeParse).Inc()
		}
		series = series[:0]
	} else {
		s.m.Scrapes.WithLabelValues("ok").Inc()
		if n := l.dropRepeats(series); n > 0 {
			s.m.SamplesDropped.WithLabelValues(DropRepeated).Add(float64(n))
		}
		if change == healthCameUp {
			s.log.Info("scrape target up", "target", l.name, "failed_attempts", failed, "down_for", downFor.Round(time.Millisecond))
		}
	}
	s.m.TargetUp.WithLabelValues(l.name).Set(up)
	s.m.ScrapeDuration.WithLabelValues(l.name).Set(dur.Seconds())
	s.m.ScrapeSamples.WithLabelValues(l.name).Set(float64(len(series)))
	s.m.SamplesReceived.WithLabelValues("scrape").Add(float64(len(series)))
	ts := start.UnixMilli()
	series = append(series,
		targetSeries(l.t.Labels, "up", ts, up),
		targetSeries(l.t.Labels, "scrape_duration_seconds", ts, dur.Seconds()),
		targetSeries(l.t.Labels, "scrape_samples_scraped", ts, float64(len(series))))
	batch.Reset()
	for i := range series {
		s.mapper.Map(batch, series[i].Labels, series[i].Samples)
	}
	s.m.dropped(batch.Dropped)
	pctx, cancel := context.WithTimeout(ctx, l.t.Interval)
	defer cancel()
	if err := s.sink.Publish(pctx, batch, -1); err != nil {
		s.m.SamplesDropped.WithLabelValues(DropPublishFailed).Add(float64(batch.Len()))
		s.log.Warn("scrape: publish failed; samples of this scrape are lost", "target", l.name, "samples", batch.Len(), "err", err)
	}
}

func targetSeries(tl map[string]string, name string, ts int64, v float64) Series {
	ls := make([]schemas.Label, 0, len(tl)+1)
	ls = append(ls, schemas.Label{Name: "__name__", Value: name})
	for k, val := range tl {
		ls = append(ls, schemas.Label{Name: k, Value: val})
	}
	slices.SortFunc(ls, func(a, b schemas.Label) int { return strings.Compare(a.Name, b.Name) })
	return Series{Labels: ls, Samples: []Sample{{TimestampMs: ts, Value: v}}}
}

var errParse = errors.New("unparsable exposition")

func (s *Scraper) fetch(ctx context.Context, t Target, start time.Time) ([]Series, error) {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", t.URL, err)
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", fmt.Sprintf("%g", t.Timeout.Seconds()))
	req.Header.Set("User-Agent", "ebbflow-ingest")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", t.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("scrape %s: %w: HTTP %s", t.URL, errHTTPStatus, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w: %w", t.URL, errReadBody, err)
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("scrape %s: %w: over %d bytes", t.URL, errBodyTooBig, s.cfg.MaxBodyBytes)
	}
	var md *[]MetricMeta
	if s.meta != nil {
		md = new([]MetricMeta)
	}
	series, err := parseExposition(body, expfmt.ResponseFormat(resp.Header), t.Labels, s.cfg.HonorLabels, start.UnixMilli(), md)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", t.URL, err)
	}
	if md != nil {
		s.meta.Observe(schemas.MetadataSourceScrape, *md)
	}
	return series, nil
}

// SetMetadataWriter makes the scraper hand each exposition's # TYPE,
// # HELP (and, where the parser keeps it, # UNIT) to mw.
func (s *Scraper) SetMetadataWriter(mw *MetadataWriter) { s.meta = mw }

// dtoTypes maps the exposition's metric types to the remote_write enum
// MetricMeta.Type uses.
var dtoTypes = map[dto.MetricType]int32{dto.MetricType_COUNTER: 1, dto.MetricType_GAUGE: 2, dto.MetricType_HISTOGRAM: 3,
	dto.MetricType_GAUGE_HISTOGRAM: 4, dto.MetricType_SUMMARY: 5, dto.MetricType_UNTYPED: 0}

// ParseExposition parses a metrics exposition (Prometheus text, protobuf
// or OpenMetrics, as format says) into series, flattening summaries and
// histograms the way Prometheus stores them (_bucket{le}, _sum, _count,
// {quantile}). Target labels are attached: a scraped label that collides
// with one is renamed exported_<name> unless honor is set. Samples without
// their own timestamp get defaultTs. Label sets come out sorted by name.
func ParseExposition(body []byte, format expfmt.Format, target map[string]string, honor bool, defaultTs int64) ([]Series, error) {
	return parseExposition(body, format, target, honor, defaultTs, nil)
}

// parseExposition is ParseExposition that also appends each family's
// metadata (type, help, unit; not an untyped family without help or unit)
// to *meta when meta is not nil.
func parseExposition(body []byte, format expfmt.Format, target map[string]string, honor bool, defaultTs int64, meta *[]MetricMeta) ([]Series, error) {
	if format.FormatType() == expfmt.TypeUnknown {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	dec := expfmt.NewDecoder(strings.NewReader(string(body)), format)
	var out []Series
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%w: %v", errParse, err)
		}
		if meta != nil && mf.GetName() != "" {
			if typ := dtoTypes[mf.GetType()]; typ != 0 || mf.GetHelp() != "" || mf.GetUnit() != "" {
				*meta = append(*meta, MetricMeta{Name: mf.GetName(), Type: typ, Help: mf.GetHelp(), Unit: mf.GetUnit()})
			}
		}
		var err error
		out, err = appendFamily(out, &mf, target, honor, defaultTs)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func appendFamily(out []Series, mf *dto.MetricFamily, target map[string]string, honor bool, defaultTs int64) ([]Series, error) {
	name := mf.GetName()
	if name == "" {
		return out, fmt.Errorf("%w: metric family without a name", errParse)
	}
	for _, m := range mf.GetMetric() {
		ts := defaultTs
		if m.TimestampMs != nil {
			ts = m.GetTimestampMs()
		}
		base := make([]schemas.Label, 0, len(m.GetLabel())+len(target)+2)
		for _, lp := range m.GetLabel() {
			n := lp.GetName()
			if _, clash := target[n]; clash && !honor {
				n = model.ExportedLabelPrefix + n
			}
			base = append(base, schemas.Label{Name: n, Value: lp.GetValue()})
		}
		for k, v := range target {
			if honor && lookup(base, k) != "" {
				continue
			}
			base = append(base, schemas.Label{Name: k, Value: v})
		}
		add := func(metric string, v float64, extra ...schemas.Label) {
			ls := make([]schemas.Label, 0, len(base)+1+len(extra))
			ls = append(ls, schemas.Label{Name: "__name__", Value: metric})
			ls = append(ls, base...)
			ls = append(ls, extra...)
			slices.SortFunc(ls, func(a, b schemas.Label) int { return strings.Compare(a.Name, b.Name) })
			ls = slices.CompactFunc(ls, func(a, b schemas.Label) bool { return a.Name == b.Name })
			out = append(out, Series{Labels: ls, Samples: []Sample{{TimestampMs: ts, Value: v}}})
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			add(name, m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			add(name, m.GetGauge().GetValue())
		case dto.MetricType_SUMMARY:
			sm := m.GetSummary()
			for _, q := range sm.GetQuantile() {
				add(name, q.GetValue(), schemas.Label{Name: model.QuantileLabel, Value: formatFloat(q.GetQuantile())})
			}
			add(name+"_sum", sm.GetSampleSum())
			add(name+"_count", float64(sm.GetSampleCount()))
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			infSeen := false
			for _, b := range h.GetBucket() {
				if math.IsInf(b.GetUpperBound(), 1) {
					infSeen = true
				}
				add(name+"_bucket", float64(b.GetCumulativeCount()), schemas.Label{Name: model.BucketLabel, Value: formatFloat(b.GetUpperBound())})
			}
			if !infSeen && len(h.GetBucket()) > 0 {
				add(name+"_bucket", float64(h.GetSampleCount()), schemas.Label{Name: model.BucketLabel, Value: "+Inf"})
			}
			add(name+"_sum", h.GetSampleSum())
			add(name+"_count", float64(h.GetSampleCount()))
		default:
			add(name, m.GetUntyped().GetValue())
		}
	}
	return out, nil
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return model.SampleValue(f).String()
}
