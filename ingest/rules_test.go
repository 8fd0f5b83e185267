package ingest

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/ebbflow/ebbflow/schemas"
)

// mapped is one published sample, flattened for comparison.
type mapped struct {
	entity, signal, kind, metric string
	value                        float64
	ts                           int64
}

func (m mapped) String() string {
	return fmt.Sprintf("%s %s %s %s=%g@%d", m.entity, m.signal, m.kind, m.metric, m.value, m.ts)
}

func flatten(b *Batch) []mapped {
	var out []mapped
	for _, g := range b.Groups {
		for _, s := range g.Samples {
			out = append(out, mapped{s.Entity, s.Signal, s.Kind, s.Metric, s.Value, s.TimestampMs})
		}
	}
	slices.SortFunc(out, func(a, b mapped) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func mapExposition(t *testing.T, m *Mapper, body string, target map[string]string, ts int64) *Batch {
	t.Helper()
	series, err := ParseExposition([]byte(body), expfmt.NewFormat(expfmt.TypeTextPlain), target, false, ts)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	b := NewBatch()
	for _, s := range series {
		m.Map(b, s.Labels, s.Samples)
	}
	return b
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := readFixtureBytes(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFixtureBytes(name string) ([]byte, error) {
	return os.ReadFile("../testdata/exposition/" + name)
}

// TestDefaultRules runs every default rule against hand-written exposition
// of its exporter, scraped the way ingest scrapes it (target labels from
// discovery or a static target), and checks exactly what is published and
// what is dropped.
func TestDefaultRules(t *testing.T) {
	const ts = int64(1_700_000_100_000)
	const own = int64(1_700_000_000_000) // explicit timestamps in cadvisor.txt
	podTarget := map[string]string{"job": "kubernetes-pods", "instance": "10.0.0.5:8002", "namespace": "prod",
		"pod": "resnet-7d9f8c6b5d-x2k4q", "workload": "resnet", "node": "gpu-node-1"}
	tests := []struct {
		name        string
		fixture     string
		target      map[string]string
		want        []mapped
		wantDropped map[string]int
	}{
		{
			name: "triton", fixture: "triton.txt", target: podTarget,
			want: []mapped{
				{"svc/c1/prod/resnet", "error_rate", "counter", "nv_inference_request_failure", 3, ts},
				{"svc/c1/prod/resnet", "qps", "counter", "nv_inference_request_failure", 3, ts},
				{"svc/c1/prod/resnet", "qps", "counter", "nv_inference_request_success", 1520, ts},
				{"svc/c1/prod/resnet", "qps", "counter", "nv_inference_request_success", 48, ts},
			},
			// nv_inference_count and nv_gpu_utilization have no rule.
			wantDropped: map[string]int{DropUnmatched: 2},
		},
		{
			name: "cadvisor via kubelet", fixture: "cadvisor.txt",
			target: map[string]string{"job": "kubelet", "instance": "gpu-node-1:10250", "node": "gpu-node-1"},
			want: []mapped{
				{"svc/c1/batch/trainer", "cpu", "counter", "container_cpu_usage_seconds_total", 88.25, own},
				{"svc/c1/prod/resnet", "cpu", "counter", "container_cpu_usage_seconds_total", 1234.5, own},
				{"svc/c1/prod/resnet", "memory", "gauge", "container_memory_working_set_bytes", 2147483648, own},
			},
			// The pause container and the two pod-level cgroups.
			wantDropped: map[string]int{DropUnmatched: 3},
		},
		{
			name: "dcgm discovered as a pod", fixture: "dcgm.txt",
			target: map[string]string{"job": "kubernetes-pods", "instance": "10.0.0.9:9400", "namespace": "gpu-operator",
				"pod": "dcgm-exporter-x7k2p", "node": "gpu-node-1"},
			want: []mapped{
				{"node/c1/gpu-node-1", "gpu_memory", "gauge", "DCGM_FI_DEV_FB_USED", 30512, ts},
				{"node/c1/gpu-node-1", "gpu_util", "gauge", "DCGM_FI_DEV_GPU_UTIL", 0, ts},
				{"node/c1/gpu-node-1", "gpu_util", "gauge", "DCGM_FI_DEV_GPU_UTIL", 87, ts},
				{"svc/c1/prod/resnet", "gpu_memory", "gauge", "DCGM_FI_DEV_FB_USED", 30512, ts},
				{"svc/c1/prod/resnet", "gpu_util", "gauge", "DCGM_FI_DEV_GPU_UTIL", 87, ts},
			},
			wantDropped: map[string]int{DropUnmatched: 1},
		},
		{
			name: "dcgm via remote_write-style labels", fixture: "dcgm.txt",
			target: map[string]string{"job": "dcgm", "instance": "10.0.0.9:9400"},
			want: []mapped{
				{"node/c1/gpu-node-1", "gpu_memory", "gauge", "DCGM_FI_DEV_FB_USED", 30512, ts},
				{"node/c1/gpu-node-1", "gpu_util", "gauge", "DCGM_FI_DEV_GPU_UTIL", 0, ts},
				{"node/c1/gpu-node-1", "gpu_util", "gauge", "DCGM_FI_DEV_GPU_UTIL", 87, ts},
				{"svc/c1/prod/resnet", "gpu_memory", "gauge", "DCGM_FI_DEV_FB_USED", 30512, ts},
				{"svc/c1/prod/resnet", "gpu_util", "gauge", "DCGM_FI_DEV_GPU_UTIL", 87, ts},
			},
			wantDropped: map[string]int{DropUnmatched: 1},
		},
		{
			name: "kube-state-metrics discovered as a pod", fixture: "kube_state_metrics.txt",
			target: map[string]string{"job": "kubernetes-pods", "instance": "10.0.0.3:8080", "namespace": "kube-system",
				"pod": "kube-state-metrics-6f7d9c8b4-abcde", "workload": "kube-state-metrics", "node": "cp-1"},
			want: []mapped{
				{"svc/c1/prod/bert", "replicas", "gauge", "kube_deployment_status_replicas_available", 1, ts},
				{"svc/c1/prod/resnet", "pending_pods", "gauge", "kube_pod_status_phase", 0, ts},
				{"svc/c1/prod/resnet", "pending_pods", "gauge", "kube_pod_status_phase", 1, ts},
				{"svc/c1/prod/resnet", "replicas", "gauge", "kube_deployment_status_replicas_available", 3, ts},
			},
			// Running phases and the node capacity.
			wantDropped: map[string]int{DropUnmatched: 3},
		},
		{
			name: "node-exporter", fixture: "node_exporter.txt",
			target: map[string]string{"job": "node", "instance": "gpu-node-1:9100", "cluster": "east"},
			want: []mapped{
				{"node/east/gpu-node-1", "cpu", "counter", "node_cpu_seconds_total", 2345.67, ts},
				{"node/east/gpu-node-1", "cpu", "counter", "node_cpu_seconds_total", 8765.4, ts},
				{"node/east/gpu-node-1", "memory_available", "gauge", "node_memory_MemAvailable_bytes", 1.2884901888e+11, ts},
			},
			wantDropped: map[string]int{DropUnmatched: 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
			if err != nil {
				t.Fatal(err)
			}
			b := mapExposition(t, m, readFixture(t, tc.fixture), tc.target, ts)
			got := flatten(b)
			slices.SortFunc(tc.want, func(a, b mapped) int { return strings.Compare(a.String(), b.String()) })
			if !slices.Equal(got, tc.want) {
				t.Errorf("published:\n got %v\nwant %v", got, tc.want)
			}
			if fmt.Sprint(b.Dropped) != fmt.Sprint(tc.wantDropped) {
				t.Errorf("dropped = %v, want %v", b.Dropped, tc.wantDropped)
			}
			for _, g := range b.Groups {
				for _, s := range g.Samples {
					if !slices.IsSortedFunc(s.Labels, func(a, b schemas.Label) int { return strings.Compare(a.Name, b.Name) }) {
						t.Errorf("labels of %s not sorted: %v", s.Metric, s.Labels)
					}
					if lookup(s.Labels, "__name__") != "" {
						t.Errorf("labels of %s keep __name__", s.Metric)
					}
				}
			}
		})
	}
}

// TestTritonLatencyRatio scrapes Triton twice: the second scrape yields
// the mean request and queue latency in ms over the interval; a model
// without new requests yields nothing (no division by zero).
func TestTritonLatencyRatio(t *testing.T) {
	m, err := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	if err != nil {
		t.Fatal(err)
	}
	target := map[string]string{"job": "triton", "namespace": "prod", "pod": "resnet-7d9f8c6b5d-x2k4q"}
	first := readFixture(t, "triton.txt")
	b1 := mapExposition(t, m, first, target, 1000)
	for _, s := range flatten(b1) {
		if s.signal == "latency_p99" || s.signal == "queue_latency" {
			t.Fatalf("first scrape produced a ratio without a previous pair: %v", s)
		}
	}
	second := strings.NewReplacer(
		`nv_inference_request_success{model="resnet50",version="1"} 1520`, `nv_inference_request_success{model="resnet50",version="1"} 1620`,
		`nv_inference_request_duration_us{model="resnet50",version="1"} 7600000`, `nv_inference_request_duration_us{model="resnet50",version="1"} 8600000`,
		`nv_inference_queue_duration_us{model="resnet50",version="1"} 1520000`, `nv_inference_queue_duration_us{model="resnet50",version="1"} 1570000`,
	).Replace(first)
	b2 := mapExposition(t, m, second, target, 16000)
	var got []mapped
	for _, s := range flatten(b2) {
		if s.kind == KindGauge {
			got = append(got, s)
		}
	}
	want := []mapped{
		{"svc/c1/prod/resnet", "latency_p99", "gauge", "ebbflow:nv_inference_request_latency:ms", 10, 16000},
		{"svc/c1/prod/resnet", "queue_latency", "gauge", "ebbflow:nv_inference_queue_latency:ms", 0.5, 16000},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ratios:\n got %v\nwant %v", got, want)
	}
	// A counter reset (Triton restarted) emits nothing and restarts the pair.
	reset := strings.NewReplacer("8600000", "100", "1620", "2").Replace(second)
	for _, s := range flatten(mapExposition(t, m, reset, target, 31000)) {
		if s.kind == KindGauge {
			t.Errorf("ratio across a counter reset: %v", s)
		}
	}
	if n := m.ForgetIdle(); n != 0 {
		t.Errorf("ForgetIdle right after use forgot %d series", n)
	}
	if n := m.ForgetIdle(); n == 0 {
		t.Error("ForgetIdle after an idle period kept every series")
	}
}

func TestWorkloadFromPod(t *testing.T) {
	for pod, want := range map[string]string{
		"resnet-7d9f8c6b5d-x2k4q":   "resnet",
		"my-app-v2-5c8d7b9f4-zx9wq": "my-app-v2",
		"trainer-0":                 "trainer",
		"kafka-broker-12":           "kafka-broker",
		"dcgm-exporter-x7k2p":       "dcgm-exporter",
		"standalone":                "standalone",
		"manual-pod-name":           "manual-pod-name",
		"":                          "",
		"-x2k4q":                    "",
		"a--x2k4q":                  "a-",
		"web-7d9f8c6b5-":            "web-7d9f8c6b5-",
		"db-":                       "db-",
	} {
		if got := WorkloadFromPod(pod); got != want {
			t.Errorf("WorkloadFromPod(%q) = %q, want %q", pod, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = WorkloadFromPod("resnet-7d9f8c6b5d-x2k4q") }); n != 0 {
		t.Errorf("WorkloadFromPod allocates %v times per call, want 0 (it runs for every mapped series)", n)
	}
}

func TestRuleValidation(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want string
	}{
		{"no metric", Rule{Name: "r", Signal: "qps", Kind: KindGauge, Entity: "svc/x"}, "metric"},
		{"bad kind", Rule{Name: "r", Metric: "m", Signal: "qps", Kind: "summary", Entity: "svc/x"}, "kind"},
		{"bad matcher", Rule{Name: "r", Metric: "m", Signal: "qps", Kind: KindGauge, Entity: "svc/x", Matchers: []string{"a==b"}}, "matcher"},
		{"bad regex", Rule{Name: "r", Metric: "m", Signal: "qps", Kind: KindGauge, Entity: "svc/x", Matchers: []string{`a=~"("`}}, "matcher"},
		{"unclosed", Rule{Name: "r", Metric: "m", Signal: "qps", Kind: KindGauge, Entity: "svc/{x"}, "entity"},
		{"ratio without denominator", Rule{Name: "r", Metric: "m", Signal: "l", Kind: KindRatio, Entity: "svc/x", Record: "r"}, "denominator"},
		{"no entity", Rule{Name: "r", Metric: "m", Signal: "qps", Kind: KindGauge}, "entity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	for _, r := range DefaultRules() {
		if err := r.Validate(); err != nil {
			t.Errorf("default rule %s: %v", r.Name, err)
		}
	}
}

func TestMatchers(t *testing.T) {
	ls := []schemas.Label{{Name: "__name__", Value: "m"}, {Name: "a", Value: "foo"}, {Name: "b", Value: ""}}
	tests := []struct {
		m    string
		want bool
	}{
		{`a="foo"`, true}, {`a!="foo"`, false}, {`a=~"f.*"`, true}, {`a=~"o"`, false}, {`a!~"bar|baz"`, true},
		{`b=""`, true}, {`c=""`, true}, {`c!=""`, false}, {`a="fo\"o"`, false},
	}
	for _, tc := range tests {
		mt, err := parseMatcher(tc.m)
		if err != nil {
			t.Fatalf("%s: %v", tc.m, err)
		}
		if got := mt.matches(lookup(ls, mt.name)); got != tc.want {
			t.Errorf("%s on %v = %v, want %v", tc.m, ls, got, tc.want)
		}
	}
}

func TestUnmatchedForward(t *testing.T) {
	m, err := NewMapper(DefaultRules(), "c1", UnmatchedForward)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatch()
	stale := math.Float64frombits(schemas.StaleNaN)
	m.Map(b, []schemas.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "code", Value: "200"}},
		[]Sample{{TimestampMs: 5, Value: 1}, {TimestampMs: 6, Value: stale}})
	if len(b.Groups) != 1 || b.Groups[0].Entity != "unmapped/c1/http_requests_total" || len(b.Groups[0].Samples) != 2 {
		t.Fatalf("forwarded = %+v", b.Groups)
	}
	if !schemas.IsStale(b.Groups[0].Samples[1].Value) {
		t.Error("stale marker lost its bit pattern")
	}
	if len(b.Dropped) != 0 {
		t.Errorf("dropped %v with forwarding on", b.Dropped)
	}
}
