package autoscale

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

const benchServices = 10_000

// benchDecider tracks 10,000 services at N = 7 with a policy that makes
// every window change the count (load alternates between r = 10 and r = 5,
// no stabilization or cooldown), so every window goes the whole way to an
// encoded, schema-validated decision: the worst case.
func benchDecider() (*Decider, []string) {
	cfg := DefaultConfig()
	cfg.RepeatSuppress = 0
	cfg.StaleAfter = 24 * time.Hour
	cfg.Policy.ScaleDownStabilization = 0
	cfg.Policy.ScaleDownCooldown = 0
	cfg.Policy.Signals = map[string]SignalPolicy{schemas.SignalQPS: {ExpectRate: 0.5, Capacity: 100}}
	d := NewDecider(cfg, "", nil)
	entities := make([]string, benchServices)
	for i := range entities {
		entities[i] = schemas.ServiceEntity("bench", fmt.Sprintf("ns%d", i%50), fmt.Sprintf("svc-%d", i))
		if _, err := d.ObserveWindow(schemas.Window{Entity: entities[i], Signal: schemas.SignalReplicas, Kind: schemas.KindGauge,
			SizeS: 60, StartMs: nowMs - 60_000, EndMs: nowMs, Count: 1, Mean: 7, Last: 7}); err != nil {
			panic(err)
		}
	}
	// Compile the schemas once before timing (a process does it at start-up).
	_ = schemas.Validate(schemas.ScaleDecision{}.EventType(), []byte(`{}`))
	return d, entities
}

func benchWindow(entity string, round int) schemas.Window {
	rate := 500.0
	if round%2 == 1 {
		rate = 250
	}
	end := nowMs + int64(round+1)*60_000
	return schemas.Window{Entity: entity, Signal: schemas.SignalQPS, Kind: schemas.KindCounter, SizeS: 60,
		StartMs: end - 60_000, EndMs: end, Count: 4, Sum: rate * 60, Min: 0, Max: rate, Mean: rate, Last: rate, Rate: &rate}
}

// BenchmarkWindowToDecision measures, per window, the time from handing a
// closed window to the decider to holding the encoded, schema-validated
// Kafka message of its decision, for 10,000 services, on one goroutine
// (decisions/s per core). Sub-benchmark "encode_only" is the baseline in
// the same process: json.Marshal of the same decisions, no deciding and no
// validation. Reports p50/p99 latency.
func BenchmarkWindowToDecision(b *testing.B) {
	d, entities := benchDecider()
	topic := schemas.Topics{}.Name(schemas.TopicDecisions)
	var sample schemas.ScaleDecision
	b.Run("decide+encode+validate", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		decisions := 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w := benchWindow(entities[i%benchServices], i/benchServices)
			start := time.Now()
			out, err := d.ObserveWindow(w)
			if err != nil {
				b.Fatal(err)
			}
			if out.Decision != nil {
				if _, err := kafkax.NewMessage(topic, "/bench", *out.Decision); err != nil {
					b.Fatal(err)
				}
				decisions++
				sample = *out.Decision
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		if decisions != b.N {
			b.Fatalf("%d decisions for %d windows: the benchmark must decide on every window", decisions, b.N)
		}
		reportLatency(b, lat, decisions)
	})
	b.Run("encode_only", func(b *testing.B) {
		if sample.ID == "" {
			b.Skip("no sample decision")
		}
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if _, err := json.Marshal(sample); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		reportLatency(b, lat, b.N)
	})
}

func reportLatency(b *testing.B, lat []time.Duration, decisions int) {
	if len(lat) == 0 {
		return
	}
	total := time.Duration(0)
	for _, l := range lat {
		total += l
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e6 }
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(float64(decisions)/total.Seconds(), "decisions/s")
}
