//go:build integration

package ingest

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// om is one series the OpenMetrics target exposes: its family's metadata
// (TYPE, UNIT, HELP) and its own sample name and labels.
type om struct {
	family, typ, unit, help string
	name, labels            string
	exemplar                bool
}

// omSeries covers a counter (with an exemplar), a gauge with a unit and
// a classic histogram (buckets, sum, count), every family with HELP.
var omSeries = []om{
	{"rw2_requests", "counter", "", "Requests served, by code.", "rw2_requests_total", `code="200",path="/a b"`, true},
	{"rw2_requests", "counter", "", "Requests served, by code.", "rw2_requests_total", `code="500",path="/a b"`, false},
	{"rw2_temperature_celsius", "gauge", "celsius", "Room temperature.", "rw2_temperature_celsius", `room="a\"b"`, false},
	{"rw2_latency_seconds", "histogram", "seconds", "Request latency.", "rw2_latency_seconds_bucket", `le="0.1"`, false},
	{"rw2_latency_seconds", "histogram", "seconds", "Request latency.", "rw2_latency_seconds_bucket", `le="1.0"`, false},
	{"rw2_latency_seconds", "histogram", "seconds", "Request latency.", "rw2_latency_seconds_bucket", `le="+Inf"`, false},
	{"rw2_latency_seconds", "histogram", "seconds", "Request latency.", "rw2_latency_seconds_sum", ``, false},
	{"rw2_latency_seconds", "histogram", "seconds", "Request latency.", "rw2_latency_seconds_count", ``, false},
}

// omValue is a deterministic value per series and scrape; histogram
// buckets grow with le, and count equals the +Inf bucket.
func omValue(i int, ts int64) float64 {
	base := float64(ts%100000) * 2
	switch omSeries[i].name {
	case "rw2_latency_seconds_bucket":
		return base + float64(i)
	case "rw2_latency_seconds_count":
		return base + 5 // the +Inf bucket
	case "rw2_latency_seconds_sum":
		return base*0.25 + 0.5
	}
	return base + float64(i) + 0.5
}

// omTarget serves omSeries in the OpenMetrics text format, each sample
// with an explicit timestamp, and records the timestamps it served.
type omTarget struct {
	mu sync.Mutex
	ts []int64
}

func (o *omTarget) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	o.mu.Lock()
	ts := time.Now().UnixMilli()
	if n := len(o.ts); n > 0 && ts <= o.ts[n-1] {
		ts = o.ts[n-1] + 1
	}
	o.ts = append(o.ts, ts)
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	sec := fmt.Sprintf("%d.%03d", ts/1000, ts%1000)
	family := ""
	for i, s := range omSeries {
		if s.family != family {
			family = s.family
			fmt.Fprintf(w, "# TYPE %s %s\n", s.family, s.typ)
			if s.unit != "" {
				fmt.Fprintf(w, "# UNIT %s %s\n", s.family, s.unit)
			}
			fmt.Fprintf(w, "# HELP %s %s\n", s.family, s.help)
		}
		line := s.name
		if s.labels != "" {
			line += "{" + s.labels + "}"
		}
		line += " " + formatFloat(omValue(i, ts)) + " " + sec
		if s.exemplar {
			line += fmt.Sprintf(` # {trace_id="t%d"} 1.5 %s`, ts, sec)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "# EOF")
}

func (o *omTarget) timestamps() []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int64(nil), o.ts...)
}

// startPrometheus3 runs the upstream Prometheus 3 (EBBFLOW_TEST_PROMETHEUS3,
// built by deploy/dev/prometheus3.sh) scraping target every second and
// remote-writing with protocol 2.0 (io.prometheus.write.v2.Request) to
// url, exemplars and metadata (WAL metadata records) included; stopped
// when the test ends.
func startPrometheus3(t *testing.T, target, url string) {
	t.Helper()
	bin := os.Getenv("EBBFLOW_TEST_PROMETHEUS3")
	if bin == "" {
		t.Fatal("EBBFLOW_TEST_PROMETHEUS3 is not set: deploy/dev/prometheus3.sh builds Prometheus 3 from its Go module and deploy/dev/services.sh writes the path to .dev/services.env")
	}
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("EBBFLOW_TEST_PROMETHEUS3=%s is not an executable (%v): run deploy/dev/prometheus3.sh to build it", bin, err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "prometheus, version") {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: target
    honor_labels: true
    honor_timestamps: true
    static_configs:
      - targets: [%q]
remote_write:
  - url: %q
    protobuf_message: io.prometheus.write.v2.Request
    send_exemplars: true
    remote_timeout: 10s
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
      min_shards: 1
      max_shards: 2
      max_samples_per_send: 100
`, target, url)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	runPrometheus(t, bin, dir, "prometheus 3", time.Minute, "--enable-feature=exemplar-storage,metadata-wal-records")
}

// TestPrometheus3RemoteWrite2ToKafka: the upstream Prometheus 3 scrapes an
// OpenMetrics target (counter with an exemplar, gauge with a unit, classic
// histogram, HELP on every family) and sends remote_write 2.0 to ingest;
// every sample of the first scrapes arrives in the real Kafka exactly
// once, with its name, every label (the target's, job and instance) and
// its value and timestamp bit for bit, and ingest answered with protocol
// 2.0 (its written-count headers), so Prometheus recorded no failures.
//
// The metadata (TYPE, HELP, UNIT), which metrics.raw has no column for,
// arrives on <prefix>.metrics.metadata.v1: the counter's, the gauge's
// (with its unit) and the histogram's (one family for its _bucket, _sum
// and _count series), each written once although every request repeats
// it. Exemplars are counted (ebbflow_ingest_exemplars_received_total),
// not carried: the test checks the count, not their content.
func TestPrometheus3RemoteWrite2ToKafka(t *testing.T) {
	srv := &omTarget{}
	target := httptest.NewServer(srv)
	defer target.Close()
	u := startIngest(t, Deps{}, nil)
	instance := strings.TrimPrefix(target.URL, "http://")
	// A recording proxy in front of ingest: what protocol Prometheus 3
	// spoke, and what ingest answered.
	ingestURL, err := url.Parse(u.url)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: ingestURL.Scheme, Host: ingestURL.Host})
	var (
		mu       sync.Mutex
		ctypes   = map[string]int{}
		versions = map[string]int{}
		written  int
	)
	rp.ModifyResponse = func(r *http.Response) error {
		mu.Lock()
		defer mu.Unlock()
		if n, err := strconv.Atoi(r.Header.Get("X-Prometheus-Remote-Write-Samples-Written")); err == nil {
			written += n
		}
		return nil
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ctypes[r.Header.Get("Content-Type")]++
		versions[r.Header.Get("X-Prometheus-Remote-Write-Version")]++
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	startPrometheus3(t, instance, proxy.URL+ingestURL.Path)

	var tss []int64
	deadline := time.Now().Add(3 * time.Minute)
	for len(tss) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus 3 scraped the target %d times in 3m", len(tss))
		}
		time.Sleep(200 * time.Millisecond)
		tss = srv.timestamps()
	}
	tss = tss[:5]
	// want: metric name + sorted labels + ts + value bits.
	key := func(name string, ls []schemas.Label, ts int64, v float64) string {
		var parts []string
		for _, l := range ls {
			if l.Name != "__name__" {
				parts = append(parts, l.Name+"="+l.Value)
			}
		}
		sort.Strings(parts)
		return fmt.Sprintf("%s{%s}@%d=%x", name, strings.Join(parts, ","), ts, math.Float64bits(v))
	}
	want := map[string]bool{}
	for _, ts := range tss {
		for i, s := range omSeries {
			ls := []schemas.Label{{Name: "job", Value: "target"}, {Name: "instance", Value: instance}}
			if s.labels != "" {
				for _, kv := range splitLabels(t, s.labels) {
					ls = append(ls, kv)
				}
			}
			want[key(s.name, ls, ts, omValue(i, ts))] = true
		}
	}
	ours := func(s schemas.RawSample) bool {
		return strings.HasPrefix(s.Metric, "rw2_") && lookup(s.Labels, "job") == "target" && s.TimestampMs >= tss[0] && s.TimestampMs <= tss[len(tss)-1]
	}
	got := consumeRaw(t, u.kc.Brokers, u.topic, func(have []schemas.RawSample) bool {
		seen := map[string]bool{}
		for _, s := range have {
			if ours(s) {
				seen[key(s.Metric, s.Labels, s.TimestampMs, s.Value)] = true
			}
		}
		for k := range want {
			if !seen[k] {
				return false
			}
		}
		return true
	})
	counts := map[string]int{}
	for _, s := range got {
		if ours(s) {
			counts[key(s.Metric, s.Labels, s.TimestampMs, s.Value)]++
			if name := lookup(s.Labels, "__name__"); name != "" && name != s.Metric {
				t.Errorf("sample %s carries __name__=%q", s.Metric, name)
			}
		}
	}
	for k := range want {
		if counts[k] != 1 {
			t.Errorf("expected sample in Kafka %d times, want once: %s", counts[k], k)
		}
	}
	for k, n := range counts {
		if !want[k] {
			t.Errorf("unexpected sample in Kafka (%d times): %s", n, k)
		}
	}
	t.Logf("compared %d samples of %d scrapes sent with remote_write 2.0", len(want), len(tss))
	// Every request was 2.0 and accepted, and ingest said how many samples
	// it wrote (what a 2.0 sender checks).
	mu.Lock()
	for ct, n := range ctypes {
		if ct != "application/x-protobuf;proto=io.prometheus.write.v2.Request" {
			t.Errorf("%d requests with Content-Type %q, want remote_write 2.0's", n, ct)
		}
	}
	for v, n := range versions {
		if !strings.HasPrefix(v, "2.") {
			t.Errorf("%d requests with X-Prometheus-Remote-Write-Version %q, want 2.x", n, v)
		}
	}
	if len(ctypes) == 0 || written < len(want) {
		t.Errorf("requests %v; ingest reported %d samples written, want at least %d", ctypes, written, len(want))
	}
	mu.Unlock()
	if n := gatheredCounterLabel(t, u, "204"); n == 0 {
		t.Error("ingest answered no remote_write request with 204")
	}
	for _, code := range []string{"400", "415", "500", "503"} {
		if n := gatheredCounterLabel(t, u, code); n != 0 {
			t.Errorf("ingest answered %v remote_write requests with %s", n, code)
		}
	}
	checkRW2Metadata(t, u)
	if n := gatheredCounter(t, u.reg, "ebbflow_ingest_exemplars_received_total"); n < 1 {
		t.Errorf("ebbflow_ingest_exemplars_received_total = %v, want at least 1 (the counter's exemplar)", n)
	}
}

// checkRW2Metadata reads the metadata topic until the target's three
// families are there and checks their type, unit and help, and that each
// was written once.
func checkRW2Metadata(t *testing.T, u *ingestUnderTest) {
	t.Helper()
	want := map[string]schemas.MetricMetadata{}
	for _, s := range omSeries {
		name := s.family
		if s.typ == "counter" {
			name = s.name // a counter keeps its series name (see familyName)
		}
		want[name] = schemas.MetricMetadata{Metric: name, Type: s.typ, Unit: s.unit, Help: s.help, Source: schemas.MetadataSourceRW2}
	}
	checkMetadataTopic(t, u, "rw2_", want)
}

// checkMetadataTopic reads the metadata topic until every family of want
// is there, then checks each family named with prefix: expected, written
// once, with want's type, unit, help and source.
func checkMetadataTopic(t *testing.T, u *ingestUnderTest, prefix string, want map[string]schemas.MetricMetadata) {
	t.Helper()
	topic := u.kc.Topics().Name(schemas.TopicMetricsMetadata)
	c, err := sarama.NewConsumer(u.kc.Brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("metadata topic %s: %v", topic, err)
	}
	defer pc.Close()
	got := map[string][]schemas.MetricMetadata{}
	done := func() bool {
		for k := range want {
			if len(got[k]) == 0 {
				return false
			}
		}
		return true
	}
	deadline := time.After(2 * time.Minute)
	for !done() {
		select {
		case m := <-pc.Messages():
			md, err := schemas.Decode[schemas.MetricMetadata](m.Value)
			if err != nil {
				t.Fatalf("metadata record at offset %d: %v", m.Offset, err)
			}
			if string(m.Key) != md.Metric {
				t.Errorf("metadata record key %q, metric %q", m.Key, md.Metric)
			}
			if ct := kafkax.HeaderValue(m.Headers, "ce_type"); ct != md.EventType() {
				t.Errorf("metadata record ce_type %q, want %q", ct, md.EventType())
			}
			got[md.Metric] = append(got[md.Metric], md)
		case <-deadline:
			t.Fatalf("metadata topic after 2m: %v, want %v", got, want)
		}
	}
	// Whatever else is already there (a repeat, a wrong family name).
	for drained := false; !drained; {
		select {
		case m := <-pc.Messages():
			md, err := schemas.Decode[schemas.MetricMetadata](m.Value)
			if err != nil {
				t.Fatalf("metadata record at offset %d: %v", m.Offset, err)
			}
			got[md.Metric] = append(got[md.Metric], md)
		case <-time.After(2 * time.Second):
			drained = true
		}
	}
	for name, mds := range got {
		w, ok := want[name]
		if !ok {
			if strings.HasPrefix(name, prefix) {
				t.Errorf("unexpected metadata for %q: %+v", name, mds)
			}
			continue
		}
		if len(mds) != 1 {
			t.Errorf("metadata of %s written %d times, want once: %+v", name, len(mds), mds)
		}
		g := mds[0]
		if g.Metric != w.Metric || g.Type != w.Type || g.Unit != w.Unit || g.Help != w.Help || g.Source != w.Source {
			t.Errorf("metadata of %s = %+v, want %+v", name, g, w)
		}
		if g.FirstSeenMs <= 0 || g.LastSeenMs < g.FirstSeenMs {
			t.Errorf("metadata of %s: first/last seen %d/%d", name, g.FirstSeenMs, g.LastSeenMs)
		}
		t.Logf("metadata %s: type %s, unit %q, help %q", name, g.Type, g.Unit, g.Help)
	}
}

// splitLabels parses the target's label text (name="value" pairs, the
// value with \" and \\ escapes).
func splitLabels(t *testing.T, s string) []schemas.Label {
	t.Helper()
	var out []schemas.Label
	for len(s) > 0 {
		eq := strings.Index(s, `="`)
		if eq < 0 {
			t.Fatalf("bad labels %q", s)
		}
		name := s[:eq]
		s = s[eq+2:]
		var v strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			v.WriteByte(s[i])
		}
		out = append(out, schemas.Label{Name: name, Value: v.String()})
		s = strings.TrimPrefix(s[i+1:], ",")
	}
	return out
}
