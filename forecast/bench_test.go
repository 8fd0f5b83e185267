package forecast_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/sim/synth"
	"github.com/ebbflow/ebbflow/schemas"
)

// BenchmarkServe measures the serving loop (store + feature build + score
// + event build, no Kafka) for 10,000 entities × 4 signals (qps, cpu,
// gpu_util modelled, memory as baseline), against the scorer alone on the
// same rows. Report forecasts/s per core and the ratio of the two.
func BenchmarkServe(b *testing.B) {
	dir := b.TempDir()
	copyModels(b, dir, "qps", "cpu", "gpu_util")
	reg := model.NewRegistry(history.LocalFS{}, dir, nil, prometheus.NewRegistry())
	if err := reg.Reload(b.Context()); err != nil {
		b.Fatal(err)
	}
	cfg := forecast.DefaultConfig()
	cfg.Signals = []string{"qps", "cpu", "gpu_util", "memory"}
	cfg.HistorySteps = 128 // memory bound for 40,000 series; seasonal features read NaN
	const entities = 10000
	start := time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	p := forecast.NewProcessor(cfg, reg.Current)
	svc := synth.Services(1, 9)[0]
	tmpl := synth.Generate(svc, start, 80, 60, 9)
	names := make([]string, entities)
	for e := range names {
		names[e] = schemas.ServiceEntity("bench", "ns", "svc"+string(rune('a'+e%26))+itoa(e))
	}
	step := func(i int) []schemas.Window {
		out := make([]schemas.Window, 0, 4)
		for _, w := range tmpl[3*(i%80) : 3*(i%80)+3] {
			w.StartMs, w.EndMs = start+int64(i)*60000, start+int64(i+1)*60000
			out = append(out, w)
		}
		m := out[0]
		m.Signal, m.Rate, m.Kind = "memory", nil, schemas.KindGauge
		return append(out, m)
	}
	for i := 0; i < 70; i++ { // warm history
		ws := step(i)
		for _, n := range names {
			for _, w := range ws {
				w.Entity = n
				p.Store(w)
			}
		}
	}
	b.Run("serve", func(b *testing.B) {
		i := 70
		n := 0
		for b.Loop() {
			ws := step(i)
			for _, w := range ws {
				w.Entity = names[n%entities]
				if _, ok := p.Observe(w); !ok {
					b.Fatal("no forecast")
				}
			}
			n++
			if n%entities == 0 {
				i++
			}
		}
		b.ReportMetric(float64(4*b.N)/b.Elapsed().Seconds(), "forecasts/s")
	})
	b.Run("scorer-only", func(b *testing.B) {
		m := reg.Current().For("qps")
		bld, _ := features.NewBuilder(m.Spec)
		e := features.Entity{}
		for _, s := range []string{"qps", "cpu", "gpu_util"} {
			e[s] = features.NewRing(128)
		}
		for i := 0; i < 70; i++ {
			for _, w := range step(i)[:3] {
				e[w.Signal].Set(features.Step(w.StartMs, 60), w.Value())
			}
		}
		row := make([]float64, bld.NumFeatures())
		bld.Row(e, features.Step(start+69*60000, 60), row)
		out := make([]float64, 5)
		for b.Loop() {
			m.XGB.PredictMulti(row, out)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "forecasts/s")
	})
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
