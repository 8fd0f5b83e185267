//go:build integration

package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/devsvc"
)

// TestPrometheusHonoursSimulatedTimestamps has a real Prometheus scrape the
// simulated pods and checks that it stores their samples at the simulated
// time, not at the scrape time: what lets `ebbflow dev` run faster than real
// time with an unchanged scraper. It also checks the series carry the
// labels ingest's default rules match on.
func TestPrometheusHonoursSimulatedTimestamps(t *testing.T) {
	bin := devsvc.Prometheus(t)
	// Simulated time starts 20 minutes ago and runs ahead of the scrapes.
	start := time.Now().Add(-20 * time.Minute).Truncate(time.Minute)
	s, err := Start(context.Background(), Config{Cluster: "dev", Namespace: "inference", Start: start, Step: 15 * time.Second,
		StartupDelay: 0, Nodes: 1, GPUsPerNode: 4, LatencySLOMs: 100,
		Services: []Service{{Name: "chat", Model: "llama", CapacityRPS: 40, BaseLatencyMs: 20, InitialReplicas: 1, Load: func(time.Duration) float64 { return 20 }}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pod := s.PodNames("chat")[0]

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: sim
    metrics_path: /pods/inference/%s/metrics
    static_configs: [{targets: [%q], labels: {namespace: inference, pod: %q}}]
`, pod, s.Addr(), pod)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	// Advance one simulated step per scrape until Prometheus has scraped
	// several steps.
	deadline := time.Now().Add(3 * time.Minute)
	var got []float64
	for time.Now().Before(deadline) {
		time.Sleep(1100 * time.Millisecond)
		if err := s.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		got = query(t, promAddr, fmt.Sprintf(`timestamp(nv_inference_request_success{pod=%q}[30m])`, pod))
		if len(got) >= 4 {
			break
		}
	}
	if len(got) < 4 {
		t.Fatalf("prometheus stored %d samples of nv_inference_request_success, want at least 4", len(got))
	}
	now := time.Now()
	for _, ts := range got {
		at := time.Unix(0, int64(ts*1e9))
		if at.Before(start) || at.After(s.Now()) || now.Sub(at) < 10*time.Minute {
			t.Errorf("sample stored at %v: not a simulated time in [%v, %v] (wall clock %v)", at, start, s.Now(), now)
		}
		if d := at.Sub(start); d%(15*time.Second) != 0 {
			t.Errorf("sample at %v is not on a simulated step", at)
		}
	}
	// The labels ingest's default rules need.
	for q, want := range map[string]string{
		`count(container_cpu_usage_seconds_total{container="triton"})`: "1",
		`count(DCGM_FI_DEV_GPU_UTIL{Hostname!="",exported_pod!=""})`:   "1",
		`count(nv_inference_request_failure{model="llama"})`:           "1",
	} {
		if v := queryInstant(t, promAddr, q, s.Now()); v != want {
			t.Errorf("%s = %q, want %s", q, v, want)
		}
	}
}

type promResp struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value  []any   `json:"value"`
			Values [][]any `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

func promQuery(t *testing.T, addr, q string, at time.Time) promResp {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q) + fmt.Sprintf("&time=%.3f", float64(at.UnixMilli())/1000))
	if err != nil {
		return promResp{}
	}
	defer resp.Body.Close()
	var r promResp
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return r
}

// query returns the values of a range-vector query's one series: here
// the timestamps of the stored samples.
func query(t *testing.T, addr, q string) []float64 {
	r := promQuery(t, addr, strings.Replace(q, "timestamp(", "(", 1), time.Now())
	var out []float64
	for _, res := range r.Data.Result {
		for _, v := range res.Values {
			if f, ok := v[0].(float64); ok {
				out = append(out, f)
			}
		}
	}
	return out
}

func queryInstant(t *testing.T, addr, q string, at time.Time) string {
	r := promQuery(t, addr, q, at)
	if len(r.Data.Result) == 0 || len(r.Data.Result[0].Value) < 2 {
		return ""
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v
}
