package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/klauspost/compress/snappy"
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/ingest"
	"github.com/ebbflow/ebbflow/internal/kafkax"
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
		churn                     float64
		brokers                   []string
		topic                     string
		interval                  time.Duration
		receiverPID               int
		layout                    string
		pods                      int
		recordPerSample           bool
	)
	ingestCmd := &cobra.Command{
		Use:   "ingest",
		Short: "Drive a Prometheus remote_write endpoint and report acknowledged samples/s",
		Long: `Sends realistic remote_write requests (--series series of --labels labels,
Triton/cAdvisor/DCGM metric names spread over 40 pods) from --concurrency
workers for --duration, and reports the samples acknowledged with 2xx per
second, plus how many requests were pushed back (429/503) or refused.
Works against any remote_write receiver, not only ebbflow's.

Every request is distinct, as a real Prometheus' are: each worker is a
shard with its own series (its own pods), every request carries new
timestamps (strictly increasing per series) and new values, and after
every request a --churn fraction of the worker's series is replaced by
series of new pods (rollouts). A receiver that deduplicates resends
therefore writes every request; the figure is ingest, not its dedup path.

With --brokers, it also reads back (read_committed) every record written
to --topic during the run and reports the rows there (ingest's mapping
may write one sample as several rows, one per rule it feeds, and drops
series no rule maps) and the delivered samples: distinct (metric name,
labels, timestamp) among the rows whose metric is one this generator
sends, i.e. samples the sender sent that reached the topic, each counted
once. Anything else writing those names to the topic meanwhile is counted
too. With --record-per-sample, records are not decoded: each counts as
one delivered sample (receivers that write one record per sample, such
as prometheus-kafka-adapter).

With --layout services, each worker's --series series are whole services
(a Deployment of --pods pods in namespace team-<k%7>): per pod Triton's
request counter (nv_inference_request_success → qps) and cAdvisor's CPU
counter (container_cpu_usage_seconds_total → cpu), per service
kube-state-metrics' kube_deployment_status_replicas_available (→
replicas), all names ingest's default rules map. Pods use 0.55–0.75 CPU
cores each (by service, ±10 % over 10 minutes), so with autoscale's
default policy (cpu at 70 %, 5 % tolerance) the services at 0.70 and 0.75
(two in five) go over their target and the decider asks for more
replicas. The default --layout flat is the old
worst case (~2 series per entity, no replicas signal).

With --receiver-pid, it reads the receiver's CPU time (user + system,
/proc/<pid>/stat) before and after the run and reports acknowledged (and,
with --brokers, delivered) samples per receiver CPU-second: the figure to
compare receivers by on a shared machine.`,
		Example: `  ebbflow bench ingest --url http://127.0.0.1:9201/api/v1/write --duration 30s --series 2000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if layout != layoutFlat && layout != layoutServices {
				return fmt.Errorf("bench ingest: --layout %q: want %s or %s", layout, layoutFlat, layoutServices)
			}
			if layout == layoutServices && pods < 1 {
				return fmt.Errorf("bench ingest: --pods %d: want at least 1", pods)
			}
			ct := "application/x-protobuf"
			if v2 {
				ct += ";proto=" + ingest.ProtoMsgV2
			}
			var marks *topicMarks
			if len(brokers) > 0 {
				var err error
				if marks, err = markTopic(brokers, topic); err != nil {
					return err
				}
				marks.recordPerSample = recordPerSample
			}
			cpu0, err := processCPU(receiverPID)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), duration)
			defer cancel()
			var acked, pushedBack, failed, reqs, sent, services atomic.Int64
			client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
			var wg sync.WaitGroup
			start := time.Now()
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var gen *requestGen
					if layout == layoutServices {
						gen = newServiceGen(w, series, labels, per, pods, churn, v2)
						services.Add(int64(len(gen.svcs)))
					} else {
						gen = newRequestGen(w, series, labels, per, churn, v2)
					}
					sent.Add(int64(len(gen.ss)))
					var pace *time.Ticker
					if interval > 0 {
						// Paced like a Prometheus shard: one request per
						// interval, workers spread over it.
						select {
						case <-ctx.Done():
							return
						case <-time.After(interval * time.Duration(w) / time.Duration(conc)):
						}
						pace = time.NewTicker(interval)
						defer pace.Stop()
					}
					for first := true; ctx.Err() == nil; first = false {
						if pace != nil && !first {
							select {
							case <-ctx.Done():
								return
							case <-pace.C:
							}
						}
						body := gen.next()
						req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
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
							acked.Add(int64(len(gen.ss) * per))
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
			fmt.Fprintf(cmd.OutOrStdout(), "url=%s duration=%.1fs series=%d labels=%d samples/series=%d concurrency=%d churn=%g distinct_requests=true\n", url, el, series, labels, per, conc, churn)
			if layout == layoutServices {
				fmt.Fprintf(cmd.OutOrStdout(), "layout=services services=%d pods_per_service=%d series_total=%d (per service: %d pods × 2 counters + 1 replicas gauge)\n",
					services.Load(), pods, sent.Load(), pods)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "layout=flat series_total=%d\n", sent.Load())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "requests=%d acknowledged_samples=%d acknowledged_samples_per_s=%.0f pushed_back=%d failed=%d\n",
				reqs.Load(), acked.Load(), float64(acked.Load())/el, pushedBack.Load(), failed.Load())
			cpu1, err := processCPU(receiverPID)
			if err != nil {
				return err
			}
			if receiverPID > 0 {
				cpu := cpu1 - cpu0
				fmt.Fprintf(cmd.OutOrStdout(), "receiver_pid=%d receiver_cpu_s=%.2f acknowledged_samples_per_receiver_cpu_s=%.0f\n",
					receiverPID, cpu, float64(acked.Load())/cpu)
			}
			if marks != nil {
				recs, rows, samples, err := marks.delivered()
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "topic=%s delivered_records=%d delivered_rows=%d delivered_samples=%d delivered_samples_per_s=%.0f delivered_of_acknowledged=%.3f\n",
					topic, recs, rows, samples, float64(samples)/el, float64(samples)/max(1, float64(acked.Load())))
				if receiverPID > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "delivered_samples_per_receiver_cpu_s=%.0f\n", float64(samples)/(cpu1-cpu0))
				}
			}
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
	f.StringSliceVar(&brokers, "brokers", nil, "Kafka bootstrap brokers: read back what was delivered to --topic (empty: skip)")
	f.StringVar(&topic, "topic", kafkax.DefaultConfig().Topics().Name(schemas.TopicMetricsRaw), "metrics.raw topic to read back with --brokers")
	f.DurationVar(&interval, "interval", 0, "send one request per worker per interval (e.g. 15s: --series × --concurrency series scraped every 15 s); 0 sends as fast as acknowledged")
	f.IntVar(&receiverPID, "receiver-pid", 0, "process id of the receiver (same machine): also report its CPU seconds during the run and samples per receiver CPU-second (Linux /proc)")
	f.BoolVar(&recordPerSample, "record-per-sample", false, "with --brokers: count each record on --topic as one delivered sample, without decoding it (prometheus-kafka-adapter's one JSON record per sample)")
	f.Float64Var(&churn, "churn", 0.01, "fraction of a worker's series replaced by new pods' series after each request")
	f.StringVar(&layout, "layout", layoutFlat, "flat: metric names spread over 40 pods, ~2 series per entity (the worst case for the stages after ingest); services: whole services of --pods pods, each pod a request counter and a CPU counter, each service a kube-state-metrics replicas gauge (the decider can decide)")
	f.IntVar(&pods, "pods", 4, "pods per service with --layout services")
	cmd.AddCommand(ingestCmd, newBenchLagCmd(), newBenchDecisionsCmd(), newBenchCleanCmd())
	return cmd
}

// requestGen builds one worker's distinct requests.
type requestGen struct {
	ss         []ingest.Series
	worker     int
	per        int
	churn      float64
	v2         bool
	reqs       int   // requests built so far
	pods       int   // pods created by churn so far
	lastTs     int64 // timestamp of the last request's first sample
	raw, out   []byte
	churnCarry float64
	// --layout services: what each series is, the services and their pods.
	kinds []seriesKind
	svcs  []benchService
	t0Ms  int64 // counters start at 0 here
}

const (
	layoutFlat     = "flat"
	layoutServices = "services"
)

// seriesKind says how a services-layout series' value is made.
type seriesKind struct {
	counter bool    // else a gauge
	rate    float64 // counters: mean increase per second
	gauge   float64
}

// benchService is one generated Deployment: its name and, per pod, the
// indices of the pod's series in requestGen.ss.
type benchService struct {
	name string
	pods [][]int
}

// benchPodName is a pod name as a Deployment's ReplicaSet generates it:
// <deployment>-<hash>-<5 characters>, so ingest derives the workload.
func benchPodName(svc string, n int) string { return svc + "-7d9f8c6b5d-" + podSuffix(n) }

// newServiceGen builds a worker's --layout services requests: as many
// whole services of pods pods as fit in series series (at least one).
func newServiceGen(worker, series, labels, per, pods int, churn float64, v2 bool) *requestGen {
	g := &requestGen{worker: worker, per: per, churn: churn, v2: v2, t0Ms: time.Now().UnixMilli()}
	perSvc := 2*pods + 1
	nSvc := max(series/perSvc, 1)
	pad := func(ls []schemas.Label, k int) []schemas.Label {
		for j := len(ls); j < labels; j++ {
			ls = append(ls, schemas.Label{Name: fmt.Sprintf("zz_label_%02d", j), Value: fmt.Sprintf("value-%d-%d", j, k%13)})
		}
		return ls
	}
	for k := 0; k < nSvc; k++ {
		svc := benchService{name: fmt.Sprintf("svc%d-w%d", k, worker)}
		ns := fmt.Sprintf("team-%d", k%7)
		cores := 0.55 + 0.05*float64(k%5) // per pod; 0.75 (and 0.70 at +10 %) is over the default 70 % target
		for p := 0; p < pods; p++ {
			pod := benchPodName(svc.name, k*pods+p)
			inst := fmt.Sprintf("10.%d.%d.%d:8002", worker%250, (k*pods+p)/250%250, (k*pods+p)%250)
			var idx []int
			for _, m := range []struct {
				name string
				rate float64
			}{{"nv_inference_request_success", 40 * cores}, {"container_cpu_usage_seconds_total", cores}} {
				idx = append(idx, len(g.ss))
				g.ss = append(g.ss, ingest.Series{Labels: pad([]schemas.Label{
					{Name: "__name__", Value: m.name},
					{Name: "container", Value: "triton"},
					{Name: "instance", Value: inst},
					{Name: "job", Value: "kubernetes-pods"},
					{Name: "namespace", Value: ns},
					{Name: "pod", Value: pod},
				}, k)})
				g.kinds = append(g.kinds, seriesKind{counter: true, rate: m.rate})
			}
			svc.pods = append(svc.pods, idx)
		}
		g.ss = append(g.ss, ingest.Series{Labels: pad([]schemas.Label{
			{Name: "__name__", Value: "kube_deployment_status_replicas_available"},
			{Name: "deployment", Value: svc.name},
			{Name: "instance", Value: "10.255.0.1:8080"},
			{Name: "job", Value: "kube-state-metrics"},
			{Name: "namespace", Value: ns},
		}, k)})
		g.kinds = append(g.kinds, seriesKind{gauge: float64(pods)})
		g.svcs = append(g.svcs, svc)
	}
	for i := range g.ss {
		g.ss[i].Samples = make([]ingest.Sample, per)
	}
	g.pods = nSvc * pods
	return g
}

// counterAt is a services-layout counter at ts: rate per second on
// average, ±10 % over a 10-minute period, from 0 at t0Ms.
func (g *requestGen) counterAt(rate float64, ts int64) float64 {
	const period, amp = 600.0, 0.1
	t := float64(ts-g.t0Ms) / 1000
	return rate * (t + amp*period/(2*math.Pi)*(1-math.Cos(2*math.Pi*t/period)))
}

func newRequestGen(worker, series, labels, per int, churn float64, v2 bool) *requestGen {
	ss := benchSeries(series, labels, per, 0)
	for i := range ss {
		setLabel(&ss[i], "pod", fmt.Sprintf("svc%d-w%d-7d9f8c6b5d-x2k%02d", i%40, worker, i%97))
	}
	return &requestGen{ss: ss, worker: worker, per: per, churn: churn, v2: v2}
}

// next returns the next request body: new timestamps (at least 1 ms after
// the previous request's last sample, wall clock otherwise) and values,
// and, after it, some series moved to new pods.
func (g *requestGen) next() []byte {
	ts := time.Now().UnixMilli()
	if ts <= g.lastTs {
		ts = g.lastTs + 1
	}
	g.lastTs = ts + int64(g.per-1)*15000
	for i := range g.ss {
		for k := range g.ss[i].Samples {
			at := ts + int64(k)*15000
			v := float64(i) + float64(g.reqs)*0.5 + float64(k)
			if g.kinds != nil {
				if sk := g.kinds[i]; sk.counter {
					v = g.counterAt(sk.rate, at)
				} else {
					v = sk.gauge
				}
			}
			g.ss[i].Samples[k] = ingest.Sample{TimestampMs: at, Value: v}
		}
	}
	if g.v2 {
		g.raw = ingest.AppendWriteRequestV2(g.raw[:0], g.ss)
	} else {
		g.raw = ingest.AppendWriteRequestV1(g.raw[:0], g.ss)
	}
	g.out = snappy.Encode(g.out[:cap(g.out)], g.raw)
	body := append([]byte(nil), g.out...) // the request may still be read after next returns
	g.reqs++
	g.churnCarry += g.churn * float64(len(g.ss))
	for ; g.churnCarry >= 1; g.churnCarry-- {
		if g.svcs != nil {
			// A pod of a service is replaced: its series move to the new
			// pod's name (new series to the receiver; same service).
			sv := &g.svcs[(g.pods*7919)%len(g.svcs)]
			p := sv.pods[g.pods%len(sv.pods)]
			g.pods++
			for _, i := range p {
				setLabel(&g.ss[i], "pod", benchPodName(sv.name, g.pods))
			}
			continue
		}
		i := (g.pods * 7919) % len(g.ss)
		g.pods++
		setLabel(&g.ss[i], "pod", fmt.Sprintf("svc%d-w%d-7d9f8c6b5d-%s", i%40, g.worker, podSuffix(g.pods)))
	}
	return body
}

// podSuffix is the n-th 5-character pod name suffix, in Kubernetes'
// alphabet for generated names.
func podSuffix(n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	var b [5]byte
	for i := range b {
		b[i] = alphabet[n%len(alphabet)]
		n /= len(alphabet)
	}
	return string(b[:])
}

func setLabel(s *ingest.Series, name, value string) {
	for j := range s.Labels {
		if s.Labels[j].Name == name {
			s.Labels[j].Value = value
			return
		}
	}
}

// benchNames are the metric names the generator sends; the last one no
// default rule maps (ingest drops it unless unmatched is forward).
var benchNames = []string{"nv_inference_request_success", "container_cpu_usage_seconds_total", "DCGM_FI_DEV_GPU_UTIL",
	"container_memory_working_set_bytes", "nv_inference_request_failure", "http_requests_total"}

// benchSeries builds series whose names the default rules map, over 40
// pods of 40 services.
func benchSeries(n, nLabels, per int, ts int64) []ingest.Series {
	names := benchNames
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

// topicMarks records the newest offset of every partition of a topic, so
// that what was written after can be read back.
type topicMarks struct {
	client          sarama.Client
	topic           string
	start           map[int32]int64
	recordPerSample bool
}

func markTopic(brokers []string, topic string) (*topicMarks, error) {
	kc := kafkax.DefaultConfig()
	kc.Brokers = brokers
	sc, err := kc.Sarama()
	if err != nil {
		return nil, err
	}
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	client, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("bench ingest: connect to %v: %w", brokers, err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("bench ingest: partitions of %s: %w", topic, err)
	}
	m := &topicMarks{client: client, topic: topic, start: map[int32]int64{}}
	for _, p := range parts {
		if m.start[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			client.Close()
			return nil, fmt.Errorf("bench ingest: offset of %s/%d: %w", topic, p, err)
		}
	}
	return m, nil
}

// delivered reads, read_committed, every record written to the topic since
// markTopic and counts its rows and the distinct samples of benchNames
// they hold (ingest.SampleSet).
func (m *topicMarks) delivered() (records, rows, samples int64, err error) {
	defer m.client.Close()
	cons, err := sarama.NewConsumerFromClient(m.client)
	if err != nil {
		return 0, 0, 0, err
	}
	defer cons.Close()
	keys := ingest.NewSampleSet(benchNames)
	var buf []schemas.RawSample
	for p, from := range m.start {
		end, err := m.client.GetOffset(m.topic, p, sarama.OffsetNewest)
		if err != nil {
			return records, rows, keys.Len(), fmt.Errorf("bench ingest: offset of %s/%d: %w", m.topic, p, err)
		}
		if end <= from {
			continue
		}
		pc, err := cons.ConsumePartition(m.topic, p, from)
		if err != nil {
			return records, rows, keys.Len(), fmt.Errorf("bench ingest: read %s/%d: %w", m.topic, p, err)
		}
		// Transaction markers and aborted records are not delivered, so
		// the last record may sit before end-1: stop when idle.
	read:
		for {
			select {
			case msg := <-pc.Messages():
				if m.recordPerSample {
					records++
					rows++
					if msg.Offset >= end-1 {
						break read
					}
					continue
				}
				if buf, err = schemas.DecodeRaw(buf[:0], msg.Value); err != nil {
					pc.Close()
					return records, rows, keys.Len(), fmt.Errorf("bench ingest: %s/%d@%d: %w", m.topic, p, msg.Offset, err)
				}
				records++
				rows += int64(len(buf))
				keys.Add(buf)
				if msg.Offset >= end-1 {
					break read
				}
			case <-time.After(3 * time.Second):
				break read
			}
		}
		pc.Close()
	}
	if m.recordPerSample {
		return records, rows, rows, nil
	}
	return records, rows, keys.Len(), nil
}

// processCPU returns the CPU seconds (user + system) process pid has used,
// from /proc/<pid>/stat; 0 when pid is 0.
func processCPU(pid int) (float64, error) {
	if pid <= 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench ingest: --receiver-pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench ingest: --receiver-pid %d: unexpected /proc stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("bench ingest: --receiver-pid %d: short /proc stat", pid)
	}
	// utime and stime are fields 14 and 15 (1-based), in USER_HZ (100/s on Linux).
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench ingest: --receiver-pid %d: cannot parse CPU times", pid)
	}
	return float64(ut+st) / 100, nil
}
