package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// Realistic requests: Prometheus' default max_samples_per_send is 2000,
// Kubernetes series carry 10–30 labels.
const benchSeries, benchLabels = 1000, 20

func benchRequest() (compressed []byte, samples int) {
	series := genSeries(benchSeries, benchLabels, 1_700_000_000_000)
	return snappy.Encode(nil, AppendWriteRequestV1(nil, series)), len(series)
}

// benchBodies returns k distinct requests of the same series: request i
// carries timestamps 15 s × i later and new values, as Prometheus' next
// scrapes would, so no request is a resend of another (the receiver would
// acknowledge a resend without writing it: see assertNoDuplicates).
func benchBodies(k int) (bodies [][]byte, samples int) {
	series := genSeries(benchSeries, benchLabels, 1_700_000_000_000)
	bodies = make([][]byte, k)
	var raw []byte
	for i := range bodies {
		for j := range series {
			series[j].Samples[0].TimestampMs = 1_700_000_000_000 + int64(i)*15_000
			series[j].Samples[0].Value = float64(j)*1.5 + float64(i)*0.25
		}
		raw = AppendWriteRequestV1(raw[:0], series)
		bodies[i] = snappy.Encode(nil, raw)
	}
	return bodies, len(series)
}

// assertNoDuplicates fails the benchmark if the receiver counted any
// request as a resend: the figure would then measure the dedup path.
func assertNoDuplicates(b *testing.B, m *Metrics) {
	b.Helper()
	if d := testutil.ToFloat64(m.DuplicateRequests); d != 0 {
		b.Fatalf("ebbflow_ingest_duplicate_requests_total = %v, want 0: the benchmark measured the dedup path", d)
	}
}

func reportRate(b *testing.B, samples int) {
	b.ReportMetric(float64(samples)*float64(b.N)/b.Elapsed().Seconds()/float64(runtime.GOMAXPROCS(0)), "samples/s/core")
}

// decodeOnly is the baseline: snappy + protobuf decoding of the request.
func decodeOnly(b *testing.B) {
	body, n := benchRequest()
	var w WriteRequest
	var buf []byte
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = snappy.Decode(buf[:cap(buf)], body); err != nil {
			b.Fatal(err)
		}
		if err := DecodeWriteRequestV1(buf, &w); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, n)
}

// BenchmarkRemoteWriteDecodeOnly is the baseline of the ingest targets.
func BenchmarkRemoteWriteDecodeOnly(b *testing.B) { decodeOnly(b) }

// BenchmarkRemoteWriteDecodeMapEncode adds signal mapping and Arrow IPC
// encoding of every entity's record: the CPU path short of Kafka.
func BenchmarkRemoteWriteDecodeMapEncode(b *testing.B) {
	body, n := benchRequest()
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	rc := NewReceiver(mp, nil, DefaultConfig().RemoteWrite, NewMetrics(nil), quietLog(), nil)
	st := &rwState{batch: NewBatch(), compressed: body}
	enc := schemas.NewRawEncoder()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.batch.Reset()
		if _, _, err := rc.decodeAndMap(1, st); err != nil {
			b.Fatal(err)
		}
		for _, g := range st.batch.Groups {
			if _, err := enc.Encode(g.Samples); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportRate(b, n)
}

// kfakeReceiver returns a receiver publishing through a real Publisher
// (transactional, as by default) to an in-process kfake cluster.
func kfakeReceiver(b *testing.B) (*Receiver, *Metrics, func()) {
	kc := kafkax.DefaultConfig()
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	emb, err := kafkax.StartEmbedded(0, 8, topic)
	if err != nil {
		b.Fatal(err)
	}
	kc.Brokers = emb.Addrs()
	cfg := DefaultConfig()
	cfg.Publish.TransactionalID = fmt.Sprintf("bench-%d", time.Now().UnixNano())
	newProd := func() (sarama.AsyncProducer, error) { return NewProducer(kc, cfg.Publish) }
	prod, err := newProd()
	if err != nil {
		b.Fatal(err)
	}
	m := NewMetrics(nil)
	pub := NewPublisher(prod, topic, cfg.Publish, m, quietLog(), newProd)
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	return NewReceiver(mp, pub, cfg.RemoteWrite, m, quietLog(), nil), m, func() { pub.Close(); emb.Close() }
}

// sendRequests pushes bodies through rc from workers goroutines (as
// Prometheus' shards do); each must be acknowledged.
func sendRequests(b *testing.B, rc *Receiver, bodies [][]byte, workers int) {
	var wg sync.WaitGroup
	next := make(chan []byte, len(bodies))
	for _, body := range bodies {
		next <- body
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range next {
				req := httptest.NewRequestWithContext(context.Background(), "POST", "/api/v1/write", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-protobuf")
				req.Header.Set("Content-Encoding", "snappy")
				rec := httptest.NewRecorder()
				rc.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Errorf("status %d: %s", rec.Code, rec.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkRemoteWriteEndToEndKfake is remote_write → acknowledged by
// Kafka (kfake in process, transactions on: its CPU counts against
// ingest's).
func BenchmarkRemoteWriteEndToEndKfake(b *testing.B) {
	rc, m, stop := kfakeReceiver(b)
	defer stop()
	bodies, n := benchBodies(b.N)
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	sendRequests(b, rc, bodies, 8)
	b.StopTimer()
	assertNoDuplicates(b, m)
	reportRate(b, n)
}

// BenchmarkRemoteWriteRatio times the decode-only baseline and the
// end-to-end path on the same requests in the same process and reports
// end-to-end ÷ decode-only throughput (target ≥ 0.5).
func BenchmarkRemoteWriteRatio(b *testing.B) {
	const requests, warm = 100, 10
	// Every request of the run is distinct (built before the timer): the
	// decode-only baseline and the end-to-end path see the same ones.
	all, n := benchBodies(warm + requests*b.N)
	rc, m, stop := kfakeReceiver(b)
	defer stop()
	sendRequests(b, rc, all[:warm], 8) // warm up connections and the transaction coordinator
	all = all[warm:]
	b.ResetTimer()
	var base, e2e time.Duration
	for i := 0; i < b.N; i++ {
		bodies := all[i*requests : (i+1)*requests]
		t0 := time.Now()
		var w WriteRequest
		var buf []byte
		for _, body := range bodies {
			var err error
			if buf, err = snappy.Decode(buf[:cap(buf)], body); err != nil {
				b.Fatal(err)
			}
			if err := DecodeWriteRequestV1(buf, &w); err != nil {
				b.Fatal(err)
			}
		}
		base += time.Since(t0)
		t0 = time.Now()
		sendRequests(b, rc, bodies, 8)
		e2e += time.Since(t0)
	}
	b.StopTimer()
	assertNoDuplicates(b, m)
	b.ReportMetric(float64(base)/float64(e2e), "ratio-vs-decode")
	b.ReportMetric(float64(n*requests*b.N)/base.Seconds(), "decode-samples/s")
	b.ReportMetric(float64(n*requests*b.N)/e2e.Seconds(), "e2e-samples/s")
}
