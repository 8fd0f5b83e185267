package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/ingest"
	"github.com/ebbflow/ebbflow/schemas"
)

func init() { subcommands = append(subcommands, newBenchCmd) }

func newBenchCmd(*globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Load generators for ebbflow's components"}
	var (
		url                       string
		duration                  time.Duration
		series, labels, conc, per int
		v2                        bool
	)
	ingestCmd := &cobra.Command{
		Use:   "ingest",
		Short: "Drive a Prometheus remote_write endpoint and report acknowledged samples/s",
		Long: `Sends realistic remote_write requests (--series series of --labels labels,
Triton/cAdvisor/DCGM metric names spread over 40 pods) from --concurrency
workers for --duration, and reports the samples acknowledged with 2xx per
second, plus how many requests were pushed back (429/503) or refused.
Works against any remote_write receiver, not only ebbflow's.`,
		Example: `  ebbflow bench ingest --url http://127.0.0.1:9201/api/v1/write --duration 30s --series 2000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bodies := make([][]byte, 16)
			for i := range bodies {
				ss := benchSeries(series, labels, per, time.Now().UnixMilli()+int64(i))
				var raw []byte
				if v2 {
					raw = ingest.AppendWriteRequestV2(nil, ss)
				} else {
					raw = ingest.AppendWriteRequestV1(nil, ss)
				}
				bodies[i] = snappy.Encode(nil, raw)
			}
			ct := "application/x-protobuf"
			if v2 {
				ct += ";proto=" + ingest.ProtoMsgV2
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), duration)
			defer cancel()
			var acked, pushedBack, failed, reqs atomic.Int64
			client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
			var wg sync.WaitGroup
			start := time.Now()
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; ctx.Err() == nil; i++ {
						req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[i%len(bodies)]))
						req.Header.Set("Content-Type", ct)
						req.Header.Set("Content-Encoding", "snappy")
						req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
						resp, err := client.Do(req)
						if err != nil {
							if ctx.Err() == nil {
								failed.Add(1)
							}
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						reqs.Add(1)
						switch {
						case resp.StatusCode/100 == 2:
							acked.Add(int64(series * per))
						case resp.StatusCode == 429 || resp.StatusCode == 503:
							pushedBack.Add(1)
							time.Sleep(100 * time.Millisecond)
						default:
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start).Seconds()
			fmt.Fprintf(cmd.OutOrStdout(), "url=%s duration=%.1fs series=%d labels=%d samples/series=%d concurrency=%d\n", url, el, series, labels, per, conc)
			fmt.Fprintf(cmd.OutOrStdout(), "requests=%d acknowledged_samples=%d acknowledged_samples_per_s=%.0f pushed_back=%d failed=%d\n",
				reqs.Load(), acked.Load(), float64(acked.Load())/el, pushedBack.Load(), failed.Load())
			if acked.Load() == 0 {
				return fmt.Errorf("bench ingest: no request to %s was acknowledged", url)
			}
			return nil
		},
	}
	f := ingestCmd.Flags()
	f.StringVar(&url, "url", "http://127.0.0.1:9201/api/v1/write", "remote_write endpoint")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to send")
	f.IntVar(&series, "series", 1000, "series per request")
	f.IntVar(&labels, "labels", 20, "labels per series (10–30 is realistic)")
	f.IntVar(&per, "samples-per-series", 1, "samples per series per request")
	f.IntVar(&conc, "concurrency", 4, "requests in flight (Prometheus shards)")
	f.BoolVar(&v2, "v2", false, "send remote_write 2.0 requests")
	cmd.AddCommand(ingestCmd)
	return cmd
}

// benchSeries builds series whose names the default rules map, over 40
// pods of 40 services.
func benchSeries(n, nLabels, per int, ts int64) []ingest.Series {
	names := []string{"nv_inference_request_success", "container_cpu_usage_seconds_total", "DCGM_FI_DEV_GPU_UTIL",
		"container_memory_working_set_bytes", "nv_inference_request_failure", "http_requests_total"}
	out := make([]ingest.Series, n)
	for i := range out {
		ls := []schemas.Label{
			{Name: "__name__", Value: names[i%len(names)]},
			{Name: "container", Value: "triton"},
			{Name: "instance", Value: fmt.Sprintf("10.0.0.%d:8002", i%40)},
			{Name: "job", Value: "kubernetes-pods"},
			{Name: "namespace", Value: fmt.Sprintf("team-%d", i%40%7)},
			{Name: "pod", Value: fmt.Sprintf("svc%d-7d9f8c6b5d-x2k%02d", i%40, i%97)},
		}
		for j := len(ls); j < nLabels; j++ {
			ls = append(ls, schemas.Label{Name: fmt.Sprintf("zz_label_%02d", j), Value: fmt.Sprintf("value-%d-%d", j, i%13)})
		}
		s := ingest.Series{Labels: ls}
		for k := 0; k < per; k++ {
			s.Samples = append(s.Samples, ingest.Sample{TimestampMs: ts + int64(k)*15000, Value: float64(i) + float64(k)})
		}
		out[i] = s
	}
	return out
}
