package autoscale

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbflow/ebbflow/schemas"
)

type staticWorkloads map[string]Workload

func (s staticWorkloads) Workload(ns, name string) (Workload, bool) {
	w, ok := s[ns+"/"+name]
	return w, ok
}

func deciderConfig() Config {
	cfg := DefaultConfig()
	cfg.Policy = testPolicy()
	return cfg
}

const ent = "svc/c1/prod/web"

func qpsWindow(endMs int64, rate float64) schemas.Window {
	return schemas.Window{Entity: ent, Signal: schemas.SignalQPS, Kind: schemas.KindCounter, SizeS: 60,
		StartMs: endMs - 60_000, EndMs: endMs, Count: 2, Mean: rate, Rate: &rate}
}

func replicasWindow(endMs int64, n float64) schemas.Window {
	return schemas.Window{Entity: ent, Signal: schemas.SignalReplicas, Kind: schemas.KindGauge, SizeS: 60,
		StartMs: endMs - 60_000, EndMs: endMs, Count: 1, Mean: n, Last: n}
}

func qpsForecast(origin int64, vals ...float64) schemas.Forecast {
	hs := make([]schemas.HorizonValue, len(vals))
	for i, v := range vals {
		hs[i] = schemas.HorizonValue{Minutes: i + 1, AtMs: origin + int64(i+1)*60_000, Value: v}
	}
	return schemas.Forecast{ID: "f" + time.UnixMilli(origin).UTC().Format("1504"), Entity: ent, Signal: schemas.SignalQPS,
		OriginMs: origin, StepS: 60, Horizons: hs, Model: schemas.ModelRef{ID: "m", Version: "1", FeatureSpec: "v1"}}
}

func TestDeciderNFromReplicasSignal(t *testing.T) {
	d := NewDecider(deciderConfig(), "", nil)
	out, err := d.ObserveWindow(qpsWindow(nowMs, 300))
	if err != nil || out.Decision != nil || out.Guard != "no_replicas" {
		t.Fatalf("without N: %+v %v", out, err)
	}
	// N arrives: the current 300 req/s alone asks for 6 (reactive).
	out, err = d.ObserveWindow(replicasWindow(nowMs, 3))
	if err != nil || out.Decision == nil || out.Decision.To != 6 || out.Decision.Seq != nowMs {
		t.Fatalf("reactive: %+v %v", out.Decision, err)
	}
	out, err = d.ObserveForecast(qpsForecast(nowMs, 300, 350, 400))
	if err != nil || out.Decision == nil {
		t.Fatalf("%+v %v", out, err)
	}
	sd := out.Decision
	// Same event time as the previous decision: seq moves on by one.
	if sd.From != 3 || sd.To != 8 || sd.Seq != nowMs+1 || sd.ID != DecisionID(sd.Target, nowMs+1) || sd.ForecastID != "f2213" {
		t.Fatalf("decision %+v", sd)
	}
	if sd.Target != (schemas.Target{Cluster: "c1", Namespace: "prod", Kind: "Deployment", Name: "web"}) || sd.ExpiresMs != nowMs+120_000 {
		t.Fatalf("target/expiry %+v", sd)
	}
	if _, err := schemas.Marshal(*sd); err != nil {
		t.Fatalf("decision violates schema: %v", err)
	}
	// 3 → 8 is a 167% step: an info alert.
	if len(out.Alerts) != 1 || out.Alerts[0].Kind != schemas.AlertScaleRatio {
		t.Fatalf("alerts %+v", out.Alerts)
	}
	if _, err := schemas.Marshal(out.Alerts[0]); err != nil {
		t.Fatalf("alert violates schema: %v", err)
	}
	// The same count again while N still lags: suppressed, not re-emitted.
	out, _ = d.ObserveForecast(qpsForecast(nowMs+60_000, 300, 350, 400))
	if out.Decision != nil || out.Guard != "repeat_suppressed" {
		t.Fatalf("repeat: %+v", out)
	}
}

func TestDeciderSeqGrowsAndWindowsAwaitForecasts(t *testing.T) {
	cfg := deciderConfig()
	cfg.RepeatSuppress = 0
	d := NewDecider(cfg, "c1", staticWorkloads{"prod/web": {Kind: "StatefulSet", Replicas: 2}})
	out, _ := d.ObserveWindow(qpsWindow(nowMs, 300)) // no forecast yet: reactive
	if out.Decision == nil || out.Decision.To != 6 || out.Decision.Target.Kind != "StatefulSet" || out.Decision.Reason.Demands[0].Source != SourceReactive {
		t.Fatalf("reactive decision %+v", out.Decision)
	}
	first := out.Decision.Seq
	out, _ = d.ObserveForecast(qpsForecast(nowMs, 400)) // same event time → seq+1
	if out.Decision == nil || out.Decision.Seq != first+1 || out.Decision.To != 8 {
		t.Fatalf("forecast decision %+v", out.Decision)
	}
	out, _ = d.ObserveWindow(qpsWindow(nowMs+60_000, 600))
	if out.Decision != nil || out.Guard != "await_forecast" {
		t.Fatalf("window while forecasts flow: %+v", out)
	}
}

func TestDeciderPolicySources(t *testing.T) {
	cfg := deciderConfig()
	cfg.Services = map[string]ServiceConfig{ent: {Policy: map[string]string{"max-replicas": "5"}}}
	t.Run("config override caps and alerts at max", func(t *testing.T) {
		d := NewDecider(cfg, "c1", staticWorkloads{"prod/web": {Kind: "Deployment", Replicas: 2}})
		out, _ := d.ObserveForecast(qpsForecast(nowMs, 400))
		if out.Decision == nil || out.Decision.To != 5 || Guard(out.Decision.Reason.Guard) != GuardMaxReplicas {
			t.Fatalf("%+v", out.Decision)
		}
		var kinds []string
		for _, a := range out.Alerts {
			kinds = append(kinds, a.Kind)
		}
		if strings.Join(kinds, ",") != "max_replicas,scale_ratio" {
			t.Fatalf("alerts %v", kinds)
		}
	})
	t.Run("annotations override config", func(t *testing.T) {
		d := NewDecider(cfg, "c1", staticWorkloads{"prod/web": {Kind: "Deployment", Replicas: 2,
			Annotations: map[string]string{AnnotationMaxReplicas: "7", "ebbflow.io/capacity-qps": "200"}}})
		// capacity 200 at 0.5 → r = 400/100 = 4.
		out, _ := d.ObserveForecast(qpsForecast(nowMs, 400))
		if out.Decision == nil || out.Decision.To != 4 {
			t.Fatalf("%+v", out.Decision)
		}
	})
	t.Run("bad annotation falls back to config", func(t *testing.T) {
		d := NewDecider(cfg, "c1", staticWorkloads{"prod/web": {Kind: "Deployment", Replicas: 2,
			Annotations: map[string]string{AnnotationMaxReplicas: "lots"}}})
		out, _ := d.ObserveForecast(qpsForecast(nowMs, 400))
		if out.Decision == nil || out.Decision.To != 5 {
			t.Fatalf("%+v", out.Decision)
		}
	})
	t.Run("disabled by annotation", func(t *testing.T) {
		d := NewDecider(cfg, "c1", staticWorkloads{"prod/web": {Kind: "Deployment", Replicas: 2,
			Annotations: map[string]string{AnnotationDisabled: "true"}}})
		out, _ := d.ObserveForecast(qpsForecast(nowMs, 400))
		if out.Decision != nil || out.Guard != "disabled" {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("workloads of another cluster are not looked up", func(t *testing.T) {
		d := NewDecider(cfg, "other", staticWorkloads{"prod/web": {Kind: "Deployment", Replicas: 2}})
		out, _ := d.ObserveForecast(qpsForecast(nowMs, 400))
		if out.Decision != nil || out.Guard != "no_replicas" {
			t.Fatalf("%+v", out)
		}
	})
}

func TestDeciderIgnoresAndRejects(t *testing.T) {
	d := NewDecider(deciderConfig(), "", nil)
	if out, err := d.ObserveWindow(schemas.Window{Entity: "node/c1/n1", Signal: "cpu"}); err != nil || out.Guard != "" {
		t.Fatalf("node window: %+v %v", out, err)
	}
	if _, err := d.ObserveWindow(schemas.Window{Entity: "svc/c1/only-two", Signal: "qps"}); err == nil || !strings.Contains(err.Error(), "svc/c1/only-two") {
		t.Fatalf("bad entity: %v", err)
	}
	cfg := deciderConfig()
	cfg.WindowSizeS = 60
	d = NewDecider(cfg, "", nil)
	w := replicasWindow(nowMs, 3)
	w.SizeS = 300
	d.ObserveWindow(w)
	if out, _ := d.ObserveWindow(qpsWindow(nowMs, 300)); out.Guard != "no_replicas" {
		t.Fatalf("a 300 s replicas window must be ignored with window_size_s 60: %+v", out)
	}
}

func TestDeciderStaleInputsIgnored(t *testing.T) {
	d := NewDecider(deciderConfig(), "c1", staticWorkloads{"prod/web": {Kind: "Deployment", Replicas: 4}})
	if out, _ := d.ObserveForecast(qpsForecast(nowMs, 1000)); out.Decision == nil || out.Decision.To != 14 {
		t.Fatalf("r = 20 from 4 with max step 10 → 14: %+v", out.Decision)
	}
	// Ten minutes later only a window arrives: the old forecast is stale
	// (stale_after 5m) and must not drive the decision (it would say 14).
	out, _ := d.ObserveWindow(qpsWindow(nowMs+10*60_000, 300))
	if out.Decision == nil || out.Decision.To != 6 || out.Decision.Reason.Demands[0].Source != SourceReactive {
		t.Fatalf("want reactive 4 → 6: %+v", out.Decision)
	}
}

func TestWorkloadInformer(t *testing.T) {
	three := int32(3)
	cs := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", Annotations: map[string]string{AnnotationMaxReplicas: "9"}},
			Spec: appsv1.DeploymentSpec{Replicas: &three}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "prod"}, Spec: appsv1.StatefulSetSpec{Replicas: &three}},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wl, err := NewWorkloadInformer(ctx, cs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if w, ok := wl.Workload("prod", "web"); !ok || w.Kind != "Deployment" || w.Replicas != 3 || w.Annotations[AnnotationMaxReplicas] != "9" {
		t.Fatalf("web %+v %v", w, ok)
	}
	if w, ok := wl.Workload("prod", "db"); !ok || w.Kind != "StatefulSet" {
		t.Fatalf("db %+v %v", w, ok)
	}
	if _, ok := wl.Workload("prod", "nope"); ok {
		t.Fatal("missing workload found")
	}
}

// TestBadPolicyAnnotationIsReportedNotSilent: a malformed annotation keeps
// the configured policy (as before) but marks the decision's reason and
// raises one bad_policy alert per new rejection.
func TestBadPolicyAnnotationIsReportedNotSilent(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Policy.Signals = map[string]SignalPolicy{schemas.SignalQPS: {ExpectRate: 0.5, Capacity: 100}}
	cfg.Policy.MaxReplicas = 5
	const nowMs = int64(1_700_000_000_000)
	d := NewDecider(cfg, "c1", staticWorkloads{"prod/web": {Kind: "Deployment", Replicas: 2,
		Annotations: map[string]string{AnnotationMaxReplicas: "lots"}}})
	out, err := d.ObserveForecast(qpsForecast(nowMs, 400))
	if err != nil {
		t.Fatal(err)
	}
	if out.PolicyErr == nil || !strings.Contains(out.PolicyErr.Error(), AnnotationMaxReplicas) {
		t.Fatalf("PolicyErr = %v, want one naming %s", out.PolicyErr, AnnotationMaxReplicas)
	}
	if out.Decision == nil || !strings.Contains(out.Decision.Reason.Summary, string(GuardBadPolicy)) {
		t.Fatalf("decision does not say its policy was rejected: %+v", out.Decision)
	}
	var bad []schemas.Alert
	for _, a := range out.Alerts {
		if a.Kind == schemas.AlertBadPolicy {
			bad = append(bad, a)
		}
	}
	if len(bad) != 1 || !strings.Contains(bad[0].Summary, "lots") {
		t.Fatalf("bad_policy alerts %+v", bad)
	}
	if _, err := schemas.Marshal(bad[0]); err != nil {
		t.Fatalf("bad_policy alert violates the schema: %v", err)
	}
	// The same rejection again: still on the reason, not alerted twice.
	out, _ = d.ObserveForecast(qpsForecast(nowMs+60_000, 800))
	if out.PolicyErr == nil {
		t.Fatal("second observation lost the rejection")
	}
	for _, a := range out.Alerts {
		if a.Kind == schemas.AlertBadPolicy {
			t.Fatalf("bad_policy alerted again for the same rejection: %+v", a)
		}
	}
}

// TestDeciderConcurrentServicesMatchSequential: services decided from
// several goroutines at once (a burst's partitions) get exactly the
// decisions a single goroutine gets for the same inputs, each service's
// inputs in its order; run with -race this also checks the per-service
// locking.
func TestDeciderConcurrentServicesMatchSequential(t *testing.T) {
	const services, rounds, workers = 200, 6, 8
	run := func(parallel bool) map[string][]string {
		d, _ := benchDecider()
		entities := make([]string, services)
		for i := range entities {
			entities[i] = schemas.ServiceEntity("bench", fmt.Sprintf("ns%d", i%50), fmt.Sprintf("svc-%d", i))
		}
		got := make([][]string, services)
		observe := func(i int) {
			for r := 0; r < rounds; r++ {
				out, err := d.ObserveWindow(benchWindow(entities[i], r))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := d.ObserveForecast(schemas.Forecast{ID: fmt.Sprintf("f/%d/%d", i, r), Entity: entities[i], Signal: schemas.SignalLatencyP99,
					OriginMs: nowMs + int64(r+1)*60_000}); err != nil {
					t.Error(err)
					return
				}
				if out.Decision != nil {
					b, _ := json.Marshal(out.Decision)
					got[i] = append(got[i], string(b))
				}
			}
		}
		if parallel {
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Go(func() {
					for i := w; i < services; i += workers {
						observe(i)
					}
				})
				// Two goroutines also touch the same services (Forget,
				// Services) while they are decided.
				wg.Go(func() {
					for i := w; i < services; i += workers {
						_ = d.Services()
					}
				})
			}
			wg.Wait()
		} else {
			for i := 0; i < services; i++ {
				observe(i)
			}
		}
		m := map[string][]string{}
		for i, g := range got {
			m[entities[i]] = g
		}
		return m
	}
	seq, par := run(false), run(true)
	decisions := 0
	for e, want := range seq {
		decisions += len(want)
		if fmt.Sprint(par[e]) != fmt.Sprint(want) {
			t.Fatalf("%s: parallel decisions\n%v\nsequential\n%v", e, par[e], want)
		}
	}
	if decisions < services*rounds/2 {
		t.Fatalf("only %d decisions for %d services × %d rounds: the test decides too little to compare", decisions, services, rounds)
	}
}
