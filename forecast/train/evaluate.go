package train

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
)

// Evaluation is a rolling-origin backtest of one model: every origin in
// the span is forecast from the history up to it, exactly as the
// forecaster would, and compared with what happened.
type Evaluation struct {
	Signal   string          `json:"signal"`
	ModelID  string          `json:"model_id"`
	Version  string          `json:"version"`
	StepS    int64           `json:"step_s"`
	FromMs   int64           `json:"from_ms"`
	ToMs     int64           `json:"to_ms"`
	Horizons []HorizonMetric `json:"horizons"`
	// Plot holds, per horizon, the last points of the first entity for
	// the actual-vs-forecast plot.
	Plot [][]PlotPoint `json:"-"`
}

// PlotPoint is one target time with its actual and forecast value.
type PlotPoint struct {
	AtMs             int64
	Actual, Forecast float64
}

// Evaluate backtests m on h for origins fromStep..toStep. Rows count when
// the actual and the seasonal-naive value exist, the same rule train.py
// uses for its validation figures, so the two agree on the same span.
func Evaluate(h *features.History, m *model.Model, fromStep, toStep int64, plotPoints int) (*Evaluation, error) {
	if h.StepS != m.Spec.StepS {
		return nil, fmt.Errorf("evaluate: model %s works at %ds steps, history has %ds", m.ID, m.Spec.StepS, h.StepS)
	}
	H := m.Spec.Horizons
	p := model.NewPredictor(m)
	fc := make([]float64, H)
	type acc struct {
		n                       int
		ae, ael, aes, s, sl, ss float64
	}
	accs := make([]acc, H)
	ev := &Evaluation{Signal: m.Signal(), ModelID: m.ID, Version: m.Version, StepS: h.StepS, Plot: make([][]PlotPoint, H)}
	fromStep, toStep = max(fromStep, h.First), min(toStep, h.Last)
	ev.FromMs, ev.ToMs = fromStep*h.StepS*1000, toStep*h.StepS*1000
	plotted := ""
	for _, ent := range h.EntityNames() {
		src := h.Entities[ent]
		y := src.Ring(m.Signal())
		if y == nil {
			continue
		}
		if plotted == "" {
			plotted = ent
		}
		for t := fromStep; t <= toStep; t++ {
			r, err := p.Forecast(src, t, fc)
			if err != nil {
				continue
			}
			for k := 1; k <= H; k++ {
				a := y.At(t + int64(k))
				sn := features.SeasonalNaive(y, t, k, m.Spec.DaySteps())
				if math.IsNaN(a) || math.IsNaN(sn) {
					continue
				}
				c := &accs[k-1]
				c.n++
				c.ae += math.Abs(fc[k-1] - a)
				c.ael += math.Abs(r.Current - a)
				c.aes += math.Abs(sn - a)
				c.s += smape(fc[k-1], a)
				c.sl += smape(r.Current, a)
				c.ss += smape(sn, a)
				if ent == plotted && toStep-t < int64(plotPoints) {
					ev.Plot[k-1] = append(ev.Plot[k-1], PlotPoint{AtMs: (t + int64(k)) * h.StepS * 1000, Actual: a, Forecast: fc[k-1]})
				}
			}
		}
	}
	for k, c := range accs {
		hm := HorizonMetric{Horizon: k + 1, N: c.n}
		if c.n > 0 {
			n := float64(c.n)
			hm.MAE, hm.MAELast, hm.MAESeasonal = c.ae/n, c.ael/n, c.aes/n
			hm.SMAPE, hm.SMAPELast, hm.SMAPESeasonal = 100*c.s/n, 100*c.sl/n, 100*c.ss/n
			hm.RatioLast, hm.RatioSeasonal = ratio(hm.MAE, hm.MAELast), ratio(hm.MAE, hm.MAESeasonal)
		}
		ev.Horizons = append(ev.Horizons, hm)
	}
	if accs[0].n == 0 {
		return ev, fmt.Errorf("evaluate: signal %s: no origins with an actual and a seasonal-naive value between %s and %s (the span needs more than a day of history before it)",
			m.Signal(), time.UnixMilli(ev.FromMs).UTC().Format(time.RFC3339), time.UnixMilli(ev.ToMs).UTC().Format(time.RFC3339))
	}
	return ev, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func smape(f, a float64) float64 {
	d := math.Abs(f) + math.Abs(a)
	if d == 0 {
		return 0
	}
	return 2 * math.Abs(f-a) / d
}

// timeTicks labels an axis of Unix seconds with the UTC clock: the time
// within a day, the date and time beyond.
func timeTicks(fromMs, toMs int64) plot.TimeTicks {
	format := "01-02 15:04"
	if toMs-fromMs <= 86400_000 {
		format = "15:04"
	}
	return plot.TimeTicks{Format: format, Time: plot.UnixTimeIn(time.UTC), Ticker: clockTicker{}}
}

// clockTicker puts labelled ticks on round UTC clock times (every 10, 15
// or 30 minutes, or 1, 2, 3, 6, 12, 24 or 48 hours; at most about 8
// labels) and unlabelled ones between them.
type clockTicker struct{}

// Ticks implements plot.Ticker for an axis of Unix seconds.
func (clockTicker) Ticks(lo, hi float64) []plot.Tick {
	steps := []float64{600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if (hi-lo)/s <= 8 {
			step = s
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: "x"}) // TimeTicks formats labelled ticks
		if mid := v + step/2; mid <= hi {
			ticks = append(ticks, plot.Tick{Value: mid})
		}
	}
	return ticks
}

// WritePlots writes one PNG per horizon, <dir>/<signal>_h<k>.png, of the
// actual and forecast values, and returns the paths.
func (ev *Evaluation) WritePlots(dir string) ([]string, error) {
	var paths []string
	for k, pts := range ev.Plot {
		if len(pts) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s, %d step(s) ahead (%s %s)", ev.Signal, k+1, ev.ModelID, ev.Version)
		p.X.Label.Text = "time of the forecast target (UTC)"
		p.X.Tick.Marker = timeTicks(pts[0].AtMs, pts[len(pts)-1].AtMs)
		p.Y.Label.Text = ev.Signal
		act := make(plotter.XYs, len(pts))
		fc := make(plotter.XYs, len(pts))
		for i, pt := range pts {
			x := float64(pt.AtMs) / 1000 // Unix seconds: TimeTicks' unit
			act[i] = plotter.XY{X: x, Y: pt.Actual}
			fc[i] = plotter.XY{X: x, Y: pt.Forecast}
		}
		la, err := plotter.NewLine(act)
		if err != nil {
			return paths, err
		}
		lf, err := plotter.NewLine(fc)
		if err != nil {
			return paths, err
		}
		lf.Color = color.RGBA{R: 220, G: 80, B: 30, A: 255}
		lf.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		la.Width = vg.Points(1)
		lf.Width = vg.Points(1)
		p.Add(la, lf)
		p.Legend.Add("actual", la)
		p.Legend.Add("forecast", lf)
		p.Legend.Top = true
		path := filepath.Join(dir, fmt.Sprintf("%s_h%d.png", ev.Signal, k+1))
		if err := p.Save(10*vg.Inch, 4*vg.Inch, path); err != nil {
			return paths, fmt.Errorf("evaluate: plot %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}
