package ingest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/prometheus/common/expfmt"

	"github.com/ebbflow/ebbflow/schemas"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestScraperIsolatesFailures scrapes a good, a failing and a hanging
// target with one concurrency slot: the good one keeps being scraped,
// the others report up=0.
func TestScraperIsolatesFailures(t *testing.T) {
	triton := readFixture(t, "triton.txt")
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, triton) }))
	defer good.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }))
	defer bad.Close()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)

	cfg := DefaultConfig().Scrape
	cfg.Interval, cfg.Timeout, cfg.MaxConcurrent = 100*time.Millisecond, 50*time.Millisecond, 1
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	sink := &fakeSink{}
	m := NewMetrics(nil)
	s := NewScraper(cfg, mp, sink, m, quietLog())
	lbl := map[string]string{"namespace": "prod", "pod": "resnet-7d9f8c6b5d-x2k4q"}
	s.SetTargets("static", []Target{{URL: good.URL, Labels: lbl}, {URL: bad.URL, Labels: lbl}, {URL: hang.URL, Labels: lbl}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		sink.mu.Lock()
		n := 0
		for _, g := range sink.got {
			if g.Metric == "nv_inference_request_success" {
				n++
			}
		}
		sink.mu.Unlock()
		if n >= 2*3 && counterValue(t, m.Scrapes.WithLabelValues("error")) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("good target scraped into %d success samples, errors %v", n, counterValue(t, m.Scrapes.WithLabelValues("error")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if up := counterValue(t, m.TargetUp.WithLabelValues("static/"+good.URL)); up != 1 {
		t.Errorf("good target up = %v", up)
	}
	for _, u := range []string{bad.URL, hang.URL} {
		if up := counterValue(t, m.TargetUp.WithLabelValues("static/"+u)); up != 0 {
			t.Errorf("target %s up = %v, want 0", u, up)
		}
	}
	// Removing targets stops their loops and their per-target series.
	if counterValue(t, m.Targets) != 3 {
		t.Errorf("targets gauge = %v, want 3", counterValue(t, m.Targets))
	}
}

func TestParseExpositionFormats(t *testing.T) {
	text := "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 0.7\nh_count 3\n# TYPE s summary\ns{quantile=\"0.99\"} 12\ns_sum 40\ns_count 4\nu{instance=\"own\"} 7 1234\n"
	om := "# TYPE c counter\nc_total{a=\"1\"} 5 1700000000.5\n# EOF\n"
	series, err := ParseExposition([]byte(text), expfmt.NewFormat(expfmt.TypeTextPlain), map[string]string{"job": "j", "instance": "t:1"}, false, 99)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range series {
		var b strings.Builder
		for _, l := range s.Labels {
			b.WriteString(l.Name + "=" + l.Value + ",")
		}
		got = append(got, b.String()+" "+formatFloat(s.Samples[0].Value)+"@"+formatFloat(float64(s.Samples[0].TimestampMs)))
	}
	want := []string{
		"__name__=h_bucket,instance=t:1,job=j,le=0.1, 1@99",
		"__name__=h_bucket,instance=t:1,job=j,le=+Inf, 3@99",
		"__name__=h_sum,instance=t:1,job=j, 0.7@99",
		"__name__=h_count,instance=t:1,job=j, 3@99",
		"__name__=s,instance=t:1,job=j,quantile=0.99, 12@99",
		"__name__=s_sum,instance=t:1,job=j, 40@99",
		"__name__=s_count,instance=t:1,job=j, 4@99",
		"__name__=u,exported_instance=own,instance=t:1,job=j, 7@1234",
	}
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("text:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	series, err = ParseExposition([]byte(om), expfmt.NewFormat(expfmt.TypeOpenMetrics), map[string]string{"job": "j"}, false, 99)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 1 || lookup(series[0].Labels, "__name__") != "c_total" || series[0].Samples[0].TimestampMs != 1700000000500 || series[0].Samples[0].Value != 5 {
		t.Errorf("openmetrics: %+v", series)
	}
	if _, err := ParseExposition([]byte("metric{ 1\n"), expfmt.NewFormat(expfmt.TypeTextPlain), nil, false, 0); err == nil {
		t.Error("broken exposition parsed without error")
	}
}

func TestDiscoveryFakeClientset(t *testing.T) {
	ctrl := true
	pods := []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "resnet-7d9f8c6b5d-x2k4q", Namespace: "prod",
			Labels:          map[string]string{"app": "resnet", "pod-template-hash": "7d9f8c6b5d"},
			Annotations:     map[string]string{AnnotationScrape: "true", AnnotationAddress: "127.0.0.1:18002", AnnotationPath: "/metrics", AnnotationInterval: "5s"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "resnet-7d9f8c6b5d", Controller: &ctrl}}},
			Spec: corev1.PodSpec{NodeName: "gpu-node-1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		{ObjectMeta: metav1.ObjectMeta{Name: "bert-0", Namespace: "prod", Labels: map[string]string{"app": "bert"},
			Annotations:     map[string]string{AnnotationScrape: "true", AnnotationPort: "8002"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "bert"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.3"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "quiet", Namespace: "prod", Labels: map[string]string{"app": "resnet"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.4"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: "prod", Labels: map[string]string{"app": "resnet"},
			Annotations: map[string]string{AnnotationScrape: "true", AnnotationPort: "8002"}},
			Status: corev1.PodStatus{Phase: corev1.PodSucceeded, PodIP: "10.1.2.5"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other-ns", Namespace: "kube-system", Labels: map[string]string{"app": "resnet"},
			Annotations: map[string]string{AnnotationScrape: "true", AnnotationPort: "8002"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.6"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unselected", Namespace: "prod", Labels: map[string]string{"app": "db"},
			Annotations: map[string]string{AnnotationScrape: "true", AnnotationPort: "8002"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.7"}},
	}
	client := fake.NewSimpleClientset()
	for _, p := range pods {
		if _, err := client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var latest []Target
	updates := make(chan struct{}, 16)
	d := NewDiscovery(client, KubeDiscoveryConfig{Namespaces: []string{"prod"}, LabelSelector: "app in (resnet,bert)"}, quietLog(),
		func(ts []Target) {
			mu.Lock()
			latest = ts
			mu.Unlock()
			updates <- struct{}{}
		})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	wait := func(want int) []Target {
		t.Helper()
		deadline := time.After(2 * time.Minute)
		for {
			mu.Lock()
			ts := latest
			mu.Unlock()
			if len(ts) == want {
				return ts
			}
			select {
			case <-updates:
			case <-deadline:
				t.Fatalf("discovery has %d targets %+v, want %d", len(ts), ts, want)
			}
		}
	}
	ts := wait(2)
	if ts[0].URL != "http://10.1.2.3:8002/metrics" || ts[0].Labels["workload"] != "bert" || ts[0].Labels["pod"] != "bert-0" {
		t.Errorf("bert target = %+v", ts[0])
	}
	if ts[1].URL != "http://127.0.0.1:18002/metrics" || ts[1].Labels["workload"] != "resnet" || ts[1].Labels["node"] != "gpu-node-1" ||
		ts[1].Labels["namespace"] != "prod" || ts[1].Interval != 5*time.Second {
		t.Errorf("resnet target = %+v", ts[1])
	}
	if err := client.CoreV1().Pods("prod").Delete(ctx, "bert-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if ts := wait(1); !strings.Contains(ts[0].URL, "127.0.0.1:18002") {
		t.Errorf("after delete: %+v", ts)
	}
}

// TestDropRepeats: a target that exposes explicit timestamps and is
// scraped again before it moved on repeats its samples; the second scrape
// must add nothing (else its windows count every sample twice). A series
// that moved on keeps its new sample, a changed value at the same
// timestamp is kept, and a series that reappears after being gone starts
// afresh.
func TestDropRepeats(t *testing.T) {
	lbl := func(name string) []schemas.Label { return []schemas.Label{{Name: "__name__", Value: name}} }
	type smp struct {
		ts int64
		v  float64
	}
	scrape := func(in map[string]smp) []Series {
		var out []Series
		for _, n := range []string{"a", "b"} {
			if x, ok := in[n]; ok {
				out = append(out, Series{Labels: lbl(n), Samples: []Sample{{TimestampMs: x.ts, Value: x.v}}})
			}
		}
		return out
	}
	count := func(ss []Series) (n int) {
		for _, s := range ss {
			n += len(s.Samples)
		}
		return n
	}
	l := &scrapeLoop{}
	first := scrape(map[string]smp{"a": {1000, 1}, "b": {1000, 1}})
	if d := l.dropRepeats(first); d != 0 || count(first) != 2 {
		t.Fatalf("first scrape: dropped %d, kept %d; want 0 and 2", d, count(first))
	}
	again := scrape(map[string]smp{"a": {1000, 1}, "b": {2000, 1}})
	if d := l.dropRepeats(again); d != 1 || count(again) != 1 || again[1].Samples[0].TimestampMs != 2000 {
		t.Fatalf("repeat scrape: dropped %d, kept %v; want a's repeat dropped, b's new sample kept", d, again)
	}
	changed := scrape(map[string]smp{"a": {1000, 5}})
	if d := l.dropRepeats(changed); d != 0 {
		t.Fatalf("changed value at the same timestamp: dropped %d, want 0 (kept)", d)
	}
	// b was absent from the last scrape: it is forgotten.
	back := scrape(map[string]smp{"b": {2000, 1}})
	if d := l.dropRepeats(back); d != 0 {
		t.Fatalf("reappearing series: dropped %d, want 0", d)
	}
	dup := []Series{{Labels: lbl("c"), Samples: []Sample{{TimestampMs: 10, Value: 1}}}, {Labels: lbl("c"), Samples: []Sample{{TimestampMs: 10, Value: 1}}}}
	if d := l.dropRepeats(dup); d != 1 {
		t.Fatalf("the same sample twice in one exposition: dropped %d, want 1", d)
	}
}
