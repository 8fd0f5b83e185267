package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/klauspost/compress/snappy"

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

// endToEndKfake drives the HTTP handler with concurrent requests (as
// Prometheus' shards do) through a real Publisher on the in-process kfake
// cluster; a request counts once Kafka acknowledged all its records.
func endToEndKfake(b *testing.B) {
	kc := kafkax.DefaultConfig()
	topic := kc.Topics().Name(schemas.TopicMetricsRaw)
	emb, err := kafkax.StartEmbedded(0, 8, topic)
	if err != nil {
		b.Fatal(err)
	}
	defer emb.Close()
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
	defer pub.Close()
	mp, _ := NewMapper(DefaultRules(), "c1", UnmatchedDrop)
	rc := NewReceiver(mp, pub, cfg.RemoteWrite, m, quietLog(), nil)
	body, n := benchRequest()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
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
	})
	b.StopTimer()
	reportRate(b, n)
}

// BenchmarkRemoteWriteEndToEndKfake is remote_write → acknowledged by
// Kafka (kfake, in process: its CPU counts against ingest's).
func BenchmarkRemoteWriteEndToEndKfake(b *testing.B) { endToEndKfake(b) }

// BenchmarkRemoteWriteRatio measures the baseline and the end-to-end path
// in the same process and reports end-to-end ÷ decode-only throughput
// (target ≥ 0.5).
func BenchmarkRemoteWriteRatio(b *testing.B) {
	for i := 0; i < b.N; i++ {
		base := testing.Benchmark(decodeOnly)
		e2e := testing.Benchmark(endToEndKfake)
		if base.N == 0 || e2e.N == 0 {
			b.Fatal("a sub-benchmark failed")
		}
		b.ReportMetric(float64(base.NsPerOp())/float64(e2e.NsPerOp()), "e2e/decode")
		b.ReportMetric(float64(benchSeries)*1e9/float64(base.NsPerOp()), "decode-samples/s")
		b.ReportMetric(float64(benchSeries)*1e9/float64(e2e.NsPerOp()), "e2e-samples/s")
	}
}
