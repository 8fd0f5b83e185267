package forecast_test

import (
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestGrownRingForecastsEqualFullRing feeds the bundled qps model's inputs
// through rings that grow on demand (forecast's) and rings allocated in
// full up front (the old behaviour), at forecast.history_steps, for longer
// than the ring holds (so it wraps around), and checks every forecast is
// identical.
func TestGrownRingForecastsEqualFullRing(t *testing.T) {
	dir := t.TempDir()
	copyModels(t, dir, "qps")
	reg := model.NewRegistry(history.LocalFS{}, dir, nil, prometheus.NewRegistry())
	if err := reg.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := reg.Current().For("qps")
	if m == nil {
		t.Fatal("no qps model in testdata/models")
	}
	capacity := forecast.DefaultConfig().HistorySteps
	sigs := append([]string{m.Spec.Signal}, m.Spec.Others...)
	grown, full := features.Entity{}, features.Entity{}
	for _, s := range sigs {
		grown[s], full[s] = features.NewRing(capacity), features.NewRingFull(capacity)
	}
	pg, pf := model.NewPredictor(m), model.NewPredictor(m)
	outG, outF := make([]float64, m.Spec.Horizons), make([]float64, m.Spec.Horizons)
	compared := 0
	for s := int64(0); s < int64(capacity)+2500; s++ {
		if s%97 == 13 {
			continue // a gap
		}
		for i, sig := range sigs {
			v := 200 + 120*math.Sin(float64(s)*2*math.Pi/1440+float64(i)) + float64((s*31+int64(i))%17)
			grown[sig].Set(s, v)
			full[sig].Set(s, v)
		}
		// Every step while the ring is short (growth), then sampled, then
		// every step again once it has wrapped.
		if s > 2000 && s%11 != 0 && s < int64(capacity) {
			continue
		}
		rg, errG := pg.Forecast(grown, s, outG)
		rf, errF := pf.Forecast(full, s, outF)
		if (errG == nil) != (errF == nil) || rg != rf {
			t.Fatalf("step %d: row %+v %v, full ring %+v %v", s, rg, errG, rf, errF)
		}
		for k := range outG {
			if outG[k] != outF[k] && !(math.IsNaN(outG[k]) && math.IsNaN(outF[k])) {
				t.Fatalf("step %d horizon %d: forecast %v, full ring %v", s, k+1, outG[k], outF[k])
			}
		}
		compared++
	}
	if compared < 5000 {
		t.Fatalf("only %d forecasts compared", compared)
	}
	if b := grown[m.Spec.Signal].BufLen(); b != capacity {
		t.Fatalf("after wrap-around the grown ring's buffer is %d, want %d", b, capacity)
	}
}

// BenchmarkRingMemory reports the heap forecast's processor holds per
// series (entity × signal) after a short history (one hour of 60 s
// windows) and after a full ring (forecast.history_steps), at the default
// configuration: bytes/series. Before rings grew on demand the one-hour
// figure was the full one.
func BenchmarkRingMemory(b *testing.B) {
	const entities, signals = 2000, 2
	for _, c := range []struct {
		name  string
		steps int
	}{{"history=60", 60}, {"history=full", forecast.DefaultConfig().HistorySteps}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := forecast.DefaultConfig()
			start := time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
			var perSeries float64
			for b.Loop() {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				p := forecast.NewProcessor(cfg, func() *model.Set { return nil })
				w := schemas.Window{SizeS: cfg.StepS, Kind: schemas.KindGauge, Count: 1}
				for e := range entities {
					w.Entity = schemas.ServiceEntity("bench", "ns", "svc"+itoa(e))
					for _, sig := range []string{"qps", "cpu"}[:signals] {
						w.Signal = sig
						// Only the last hour is written one by one; a
						// full ring jumps to its span first.
						first := max(0, c.steps-60)
						if first > 0 {
							w.StartMs, w.EndMs = start, start+60000
							w.Mean = 1
							p.Store(w)
						}
						for s := first; s < c.steps; s++ {
							w.StartMs, w.EndMs = start+int64(s)*60000, start+int64(s+1)*60000
							w.Mean = float64(s)
							p.Store(w)
						}
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				perSeries = float64(m1.HeapAlloc-m0.HeapAlloc) / (entities * signals)
				runtime.KeepAlive(p)
			}
			b.ReportMetric(perSeries, "bytes/series")
		})
	}
}
