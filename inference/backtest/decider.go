package backtest

import (
	"math"
	"time"

	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/schemas"
)

// Decider runs ebbflow's autoscale decider (its pure Decide and Remember)
// as the decide service does: on every one-minute window of the metrics
// pipeline, with the window's value as the current demand and the latest
// forecast, which the Forecaster makes when a window of the series
// closes (every minute for a one-minute trace, every five for a
// five-minute one). Between decisions it holds.
type Decider struct {
	name    string
	pol     autoscale.Policy
	fc      Forecaster
	signal  string
	every   int64
	bucket  int64
	decided bool
	st      autoscale.State
	buf     []float64
	hs      []schemas.HorizonValue
}

// DecisionInterval is how often the decider decides: the window size of
// ebbflow's metrics pipeline.
const DecisionInterval = time.Minute

// DeciderPolicy returns the autoscale policy the backtest runs for a
// service: the decider's defaults with the simulated service's bounds,
// start-up time, and one demand signal at the target utilisation.
func DeciderPolicy(cfg Config, signal string) autoscale.Policy {
	p := autoscale.DefaultPolicy()
	p.MinReplicas, p.MaxReplicas = cfg.MinReplicas, cfg.MaxReplicas
	p.StartupTime = cfg.StartupDelay
	p.LatencySLOMs = 0 // the backtest feeds no latency windows
	p.Signals = map[string]autoscale.SignalPolicy{signal: {ExpectRate: cfg.Target, Capacity: cfg.Capacity}}
	return p
}

// NewDecider returns a decider policy named name over a forecaster. The
// series' signal must aggregate as a sum (a service total such as qps or
// cpu), which is what a trace of a service's load is.
func NewDecider(name string, pol autoscale.Policy, signal string, fc Forecaster) *Decider {
	return &Decider{name: name, pol: pol, fc: fc, signal: signal, every: DecisionInterval.Milliseconds(), buf: make([]float64, fc.Horizons())}
}

// Name implements Policy.
func (d *Decider) Name() string { return d.name }

// Decide implements Policy.
func (d *Decider) Decide(v View) Decision {
	if v.NewWindow && len(v.Known) > 0 {
		d.hs = d.hs[:0]
		if d.fc.Forecast(v.Known, v.StartMs, v.StepS, d.buf) {
			endMs := v.StartMs + int64(len(v.Known))*v.StepS*1000
			for k, val := range d.buf {
				mins := int((time.Duration(int64(k+1)*v.StepS) * time.Second).Minutes())
				d.hs = append(d.hs, schemas.HorizonValue{Minutes: mins, AtMs: endMs + int64(k)*v.StepS*1000, Value: val})
			}
		}
	}
	// Decide on the first tick of each interval (a tick that does not
	// divide the interval still decides once per interval).
	bucket := v.NowMs / d.every
	if d.decided && bucket == d.bucket {
		return Decision{Replicas: v.Replicas}
	}
	d.decided, d.bucket = true, bucket
	in := autoscale.SignalInput{Current: v.Metric, HasCurrent: !math.IsNaN(v.Metric), Horizons: d.hs}
	if _, ok := d.fc.(LastValue); ok && len(d.hs) > 0 {
		in.Fallback = "last_value"
	}
	st := d.st
	st.NowMs, st.Replicas = v.NowMs, v.Replicas
	st.Signals = map[string]autoscale.SignalInput{d.signal: in}
	dec := autoscale.Decide(st, d.pol)
	d.st = autoscale.Remember(st, d.pol, dec)
	reason := dec.Reason.Guard
	if reason == "" {
		reason = "formula"
	}
	return Decision{Replicas: dec.Desired, Reason: reason}
}
