// Package synth generates deterministic synthetic service traffic of the
// shape `ebbflow dev` simulates: a daily peak and valley, a weekly shape
// (quieter weekends), multiplicative noise and occasional bursts, with CPU
// and GPU utilisation following the request rate. Tests and
// `ebbflow forecast synth` use it. The bundled models in testdata/models
// are no longer trained on it (its minute-to-minute jitter is several times
// that of internal/sim's traffic and mean-reverting, where dev's is smooth
// and trending, so models fitted here lost to last value in `ebbflow dev`):
// see forecast/simtraffic.
package synth

import (
	"math"
	"math/rand/v2"

	"github.com/ebbflow/ebbflow/schemas"
)

// Service describes one synthetic service.
type Service struct {
	Entity string
	// BaseQPS is the mean request rate; PeakRatio the daily peak/valley.
	BaseQPS, PeakRatio float64
	// PeakHour is the hour (UTC) of the daily peak.
	PeakHour float64
	// Weekend is the weekend level relative to weekdays.
	Weekend float64
	// Noise is the standard deviation of the multiplicative noise.
	Noise float64
	// BurstsPerDay is the expected number of bursts per day.
	BurstsPerDay float64
}

// Services returns n varied services (scale spans two orders of magnitude).
func Services(n int, seed uint64) []Service {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]Service, n)
	for i := range out {
		out[i] = Service{
			Entity:       schemas.ServiceEntity("sim", "default", "svc-"+string(rune('a'+i%26))+itoa(i)),
			BaseQPS:      math.Pow(10, 0.5+2*r.Float64()),
			PeakRatio:    2 + 4*r.Float64(),
			PeakHour:     10 + 8*r.Float64(),
			Weekend:      0.5 + 0.4*r.Float64(),
			Noise:        0.03 + 0.07*r.Float64(),
			BurstsPerDay: 1 + 3*r.Float64(),
		}
	}
	return out
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// Generate returns qps, cpu and gpu_util windows of stepS seconds for
// steps steps from startMs, deterministic in seed.
func Generate(s Service, startMs int64, steps int, stepS int64, seed uint64) []schemas.Window {
	r := rand.New(rand.NewPCG(seed, uint64(len(s.Entity))*7919+uint64(s.BaseQPS*1000)))
	out := make([]schemas.Window, 0, 3*steps)
	burst, burstLeft := 1.0, 0
	ar := 0.0 // AR(1) noise, so noise is not white
	for i := 0; i < steps; i++ {
		start := startMs + int64(i)*stepS*1000
		sec := float64(start/1000) + float64(stepS)/2
		hour := math.Mod(sec/3600, 24)
		day := int(math.Floor(sec/86400)+3) % 7 // Monday = 0
		daily := 1 + (s.PeakRatio-1)/(s.PeakRatio+1)*math.Cos(2*math.Pi*(hour-s.PeakHour)/24)
		daily += 0.15 * math.Cos(4*math.Pi*(hour-s.PeakHour)/24) // a second, smaller wave
		weekly := 1.0
		if day >= 5 {
			weekly = s.Weekend
		}
		if burstLeft == 0 && r.Float64() < s.BurstsPerDay*float64(stepS)/86400 {
			burstLeft = 5 + r.IntN(25)
			burst = 1.5 + 1.5*r.Float64()
		}
		b := 1.0
		if burstLeft > 0 {
			b = burst
			burstLeft--
		}
		ar = 0.8*ar + s.Noise*r.NormFloat64()
		qps := max(s.BaseQPS*daily*weekly*b*(1+ar), 0)
		cpu := 0.2 + qps*0.012*(1+0.03*r.NormFloat64())
		gpu := math.Min(100, 5+90*qps/(s.BaseQPS*s.PeakRatio*1.6)*(1+0.03*r.NormFloat64()))
		rate := qps
		out = append(out,
			window(s.Entity, schemas.SignalQPS, schemas.KindCounter, start, stepS, qps, &rate),
			window(s.Entity, schemas.SignalCPU, schemas.KindCounter, start, stepS, cpu, &cpu),
			window(s.Entity, schemas.SignalGPUUtil, schemas.KindGauge, start, stepS, gpu, nil))
	}
	return out
}

func window(entity, signal, kind string, start, stepS int64, v float64, rate *float64) schemas.Window {
	w := schemas.Window{Entity: entity, Signal: signal, Kind: kind, SizeS: stepS, StartMs: start, EndMs: start + stepS*1000,
		Count: 4, Sum: 4 * v, Min: v, Max: v, Mean: v, Last: v, P50: v, P95: v, P99: v}
	if rate != nil {
		r := *rate
		w.Rate = &r
	}
	return w
}
