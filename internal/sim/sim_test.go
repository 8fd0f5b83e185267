package sim

import (
	"context"
	"fmt"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"math"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	autoscalingv1ac "k8s.io/client-go/applyconfigurations/autoscaling/v1"
)

var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func constLoad(v float64) LoadFunc { return func(time.Duration) float64 { return v } }

func newTestSim(t *testing.T, delay time.Duration, svcs ...Service) *Sim {
	t.Helper()
	s, err := Start(context.Background(), Config{
		Cluster: "dev", Namespace: "inference", Start: start, Step: 15 * time.Second,
		StartupDelay: delay, Nodes: 2, GPUsPerNode: 4, LatencySLOMs: 100, Services: svcs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// scrape GETs a /metrics URL the way a scraper does and parses it with
// Prometheus' own text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return mf
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return m.GetUntyped().GetValue()
}

func TestPodMetricsCarrySimulatedTimeAndLoad(t *testing.T) {
	const load = 60.0 // over 2 replicas of capacity 40: ρ = 0.75
	s := newTestSim(t, time.Minute, Service{Name: "chat", Model: "llama", CapacityRPS: 40, BaseLatencyMs: 20, ModelMemMiB: 16000, InitialReplicas: 2, Load: constLoad(load)})
	ctx := context.Background()
	pods := s.PodNames("chat")
	if len(pods) != 2 {
		t.Fatalf("pods = %v, want 2", pods)
	}
	first := scrape(t, s.MetricsURL("inference", pods[0]))
	for range 4 {
		if err := s.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Now().Equal(start.Add(time.Minute)) {
		t.Fatalf("now = %v", s.Now())
	}
	mf := scrape(t, s.MetricsURL("inference", pods[0]))
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED",
		"nv_inference_request_success", "nv_inference_request_failure", "nv_inference_request_duration_us", "nv_inference_queue_duration_us"} {
		f, ok := mf[name]
		if !ok {
			t.Errorf("metric %s missing", name)
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetTimestampMs() != s.Now().UnixMilli() {
				t.Errorf("%s timestamp %d, want the simulated time %d", name, m.GetTimestampMs(), s.Now().UnixMilli())
			}
		}
	}
	succ := value(mf["nv_inference_request_success"].GetMetric()[0]) - value(first["nv_inference_request_success"].GetMetric()[0])
	fail := value(mf["nv_inference_request_failure"].GetMetric()[0]) - value(first["nv_inference_request_failure"].GetMetric()[0])
	// One pod over one simulated minute serves half the load.
	if got, want := (succ+fail)/60, load/2; math.Abs(got-want) > 1e-6 {
		t.Errorf("per-pod request rate = %v, want %v", got, want)
	}
	dur := value(mf["nv_inference_request_duration_us"].GetMetric()[0])
	if got, want := dur/succ/1000, 20/(1-0.75); math.Abs(got-want) > 1e-6 {
		t.Errorf("mean latency = %v ms, want M/M/1 %v", got, want)
	}
	var gpu *dto.Metric = mf["DCGM_FI_DEV_GPU_UTIL"].GetMetric()[0]
	if label(gpu, "pod") != pods[0] || label(gpu, "namespace") != "inference" || label(gpu, "Hostname") == "" {
		t.Errorf("DCGM labels %v", gpu.GetLabel())
	}
	containers := map[string]bool{}
	for _, m := range mf["container_cpu_usage_seconds_total"].GetMetric() {
		containers[label(m, "container")] = true
	}
	if !containers["triton"] || !containers[""] {
		t.Errorf("cAdvisor cpu containers %v, want triton and the pod cgroup", containers)
	}
	st := s.Stats()[0]
	if math.Abs(st.ReplicaMinutes-2) > 1e-9 || st.Minutes != 1 || st.MinutesOverSLO != 0 {
		t.Errorf("stats %+v, want 2 replica-minutes, 1 minute judged, none over the SLO", st)
	}
}

// TestScaleSubresourceDrivesPods scales through the scale subresource, the
// way an actuator does, and checks the simulation follows: new pods are
// Pending until the start-up delay passes, kube-state-metrics reports it,
// and scaling down removes pods.
func TestScaleSubresourceDrivesPods(t *testing.T) {
	s := newTestSim(t, 45*time.Second, Service{Name: "chat", Model: "llama", CapacityRPS: 40, BaseLatencyMs: 20, InitialReplicas: 1, Load: constLoad(10)})
	ctx := context.Background()
	deps := s.Clientset().AppsV1().Deployments("inference")
	sc, err := deps.GetScale(ctx, "chat", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Spec.Replicas != 1 || sc.Status.Selector != "app=chat" {
		t.Fatalf("scale = %+v", sc)
	}
	sc.Spec.Replicas = 3
	if _, err := deps.UpdateScale(ctx, "chat", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d, err := deps.Get(ctx, "chat", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 3 {
		t.Fatalf("spec.replicas after UpdateScale = %v (%v)", d.Spec.Replicas, err)
	}
	steps := []struct {
		wantReady, wantPending int
	}{{1, 2}, {1, 2}, {1, 2}, {3, 0}} // created at 15s, ready 45s later
	for i, want := range steps {
		if err := s.Step(ctx); err != nil {
			t.Fatal(err)
		}
		pods, err := s.Clientset().CoreV1().Pods("inference").List(ctx, metav1.ListOptions{LabelSelector: "app=chat"})
		if err != nil {
			t.Fatal(err)
		}
		ready, pending := 0, 0
		for _, p := range pods.Items {
			switch p.Status.Phase {
			case corev1.PodRunning:
				ready++
			case corev1.PodPending:
				pending++
			}
			if p.Annotations[AnnotationScrape] != "true" || p.Status.PodIP == "" {
				t.Errorf("pod %s lacks scrape annotations or IP", p.Name)
			}
		}
		if ready != want.wantReady || pending != want.wantPending {
			t.Errorf("step %d: %d running, %d pending; want %d, %d", i+1, ready, pending, want.wantReady, want.wantPending)
		}
	}
	ksm := scrape(t, s.KSMURL())
	if v := value(ksm["kube_deployment_status_replicas_available"].GetMetric()[0]); v != 3 {
		t.Errorf("kube_deployment_status_replicas_available = %v, want 3", v)
	}
	d, _ = deps.Get(ctx, "chat", metav1.GetOptions{})
	if d.Status.AvailableReplicas != 3 {
		t.Errorf("deployment status available = %d", d.Status.AvailableReplicas)
	}
	// Scale down with a merge patch of the scale subresource.
	if _, err := deps.Patch(ctx, "chat", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	if err := s.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s.PodNames("chat")); n != 1 {
		t.Errorf("pods after scale-down = %d, want 1", n)
	}
	st := s.Stats()[0]
	if st.ScaleUps != 1 || st.ScaleDowns != 1 || st.MaxDesired != 3 || st.MinDesired != 1 {
		t.Errorf("stats = %+v", st)
	}
	// Server-side apply of the scale subresource (ApplyScale).
	applied, err := deps.ApplyScale(ctx, "chat", autoscalingv1ac.Scale().WithSpec(autoscalingv1ac.ScaleSpec().WithReplicas(2)), metav1.ApplyOptions{FieldManager: "test"})
	if err != nil || applied.Spec.Replicas != 2 {
		t.Fatalf("ApplyScale = %+v, %v", applied, err)
	}
	if sc, _ := deps.GetScale(ctx, "chat", metav1.GetOptions{}); sc.Spec.Replicas != 2 {
		t.Errorf("GetScale after ApplyScale = %d", sc.Spec.Replicas)
	}
	// Scaling something that does not exist is the API's NotFound.
	if _, err := deps.GetScale(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("GetScale of a missing deployment: %v", err)
	}
}

// TestPendingWithoutGPUs: a pod that finds no free GPU stays Pending and
// kube-state-metrics says so.
func TestPendingWithoutGPUs(t *testing.T) {
	s := newTestSim(t, 0, Service{Name: "big", Model: "m", CapacityRPS: 10, BaseLatencyMs: 10, InitialReplicas: 8, Load: constLoad(1)})
	ctx := context.Background()
	sc, _ := s.Clientset().AppsV1().Deployments("inference").GetScale(ctx, "big", metav1.GetOptions{})
	sc.Spec.Replicas = 10 // 2 nodes × 4 GPUs = 8
	if _, err := s.Clientset().AppsV1().Deployments("inference").UpdateScale(ctx, "big", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Step(ctx); err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, m := range scrape(t, s.KSMURL())["kube_pod_status_phase"].GetMetric() {
		if label(m, "phase") == "Pending" && value(m) == 1 {
			pending++
		}
	}
	if pending != 2 {
		t.Errorf("pending pods = %d, want 2", pending)
	}
	if st := s.State()[0]; st.Ready != 8 || st.Pods != 10 {
		t.Errorf("state = %+v", st)
	}
}

func TestOverloadFailsAndBreaksSLO(t *testing.T) {
	s := newTestSim(t, 0, Service{Name: "hot", Model: "m", CapacityRPS: 10, BaseLatencyMs: 20, InitialReplicas: 1, Load: constLoad(30)})
	for range 8 {
		if err := s.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()[0]
	if st.MinutesOverSLO != st.Minutes || st.Minutes != 2 {
		t.Errorf("minutes over SLO %d of %d, want all of 2", st.MinutesOverSLO, st.Minutes)
	}
	if got := st.Failures / st.Requests; got < 0.6 {
		t.Errorf("failure share %v, want about 2/3 when offered 3× capacity", got)
	}
}

func TestPatternShape(t *testing.T) {
	p := Pattern{Peak: 100, Valley: 0.2, MorningHour: 11, EveningHour: 20, EveningWeight: 0.8, WidthHours: 2.5, StartHour: 0, Noise: 0.05, Seed: 7}
	f := p.Func()
	at := func(h float64) float64 { return f(time.Duration(h * float64(time.Hour))) }
	if at(11) < 3*at(3) {
		t.Errorf("weekday peak %v not well above the night %v", at(11), at(3))
	}
	if sat := at(5*24 + 11); sat > 0.8*at(11) {
		t.Errorf("Saturday peak %v not below Monday's %v", sat, at(11))
	}
	g := p.Func()
	for h := 0.0; h < 48; h += 0.37 {
		if at(h) != g(time.Duration(h*float64(time.Hour))) {
			t.Fatal("same seed gave different loads")
		}
	}
	q := p
	q.Seed = 8
	if q.Func()(time.Hour) == at(1) {
		t.Error("another seed gave the same noise")
	}
	b := p
	b.BurstsPerDay, b.BurstSize, b.BurstMinutes = 24, 1, 10 // one burst an hour
	bf := b.Func()
	above := 0
	for m := 0; m < 24*60; m++ {
		if bf(time.Duration(m)*time.Minute) > at(float64(m)/60)+20 {
			above++
		}
	}
	if above == 0 {
		t.Error("bursts never raised the load")
	}
}

func TestLoadRealTraces(t *testing.T) {
	cases := []struct {
		file, column, wantColumn string
		wantStep                 float64
	}{
		{"nasa_requests_per_minute.csv", "", "number_of_requests", 60},
		{"philly_node_sequence.csv", "", "active", 60},
		{"vm_cpu_readings_month_aggregated_cpu_mem.csv", "", "cpu_usage", 300},
		{"elb_request_count_8c0756.csv", "", "value", 300},
		{"vm_cpu_readings_month_aggregated_cpu_mem.csv", "assigned_mem", "assigned_mem", 300},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.wantColumn, func(t *testing.T) {
			p, err := trace.SharedPath(c.file)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := LoadTrace(p, c.column)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Column != c.wantColumn {
				t.Errorf("column %s, want %s", tr.Column, c.wantColumn)
			}
			if len(tr.Values) < 100 || tr.Offsets[1]-tr.Offsets[0] != c.wantStep {
				t.Errorf("%d rows, first step %vs", len(tr.Values), tr.Offsets[1]-tr.Offsets[0])
			}
			f := tr.Func(0, 200)
			var peak float64
			for i := 0; i < len(tr.Values); i += 7 {
				peak = max(peak, f(time.Duration(tr.Offsets[i]*float64(time.Second))))
			}
			if peak < 150 || peak > 2000 {
				t.Errorf("scaled peak %v not near the capacity 200", peak)
			}
		})
	}
}

func TestLoadTraceErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"one-column":  "time\n1\n2\n",
		"bad-value":   "time,v\n0,1\n60,x\n",
		"unsorted":    "time,v\n60,1\n0,2\n",
		"no-rows":     "time,v\n0,1\n",
		"bad-time":    "time,v\nyesterday,1\nnow,2\n",
		"same-time":   "time,v\n0,1\n0,2\n",
		"want-column": "time,v\n0,1\n60,2\n",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			p := fmt.Sprintf("%s/%s.csv", dir, name)
			if err := writeFile(p, body); err != nil {
				t.Fatal(err)
			}
			col := ""
			if name == "want-column" {
				col = "nope"
			}
			if _, err := LoadTrace(p, col); err == nil {
				t.Errorf("no error for %s", name)
			}
		})
	}
}
