package backtest

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// maxPlotPoints bounds the points per line; longer spans are averaged.
const maxPlotPoints = 3000

var policyColors = []color.RGBA{
	{R: 220, G: 80, B: 30, A: 255},  // first policy (ebbflow)
	{R: 40, G: 120, B: 200, A: 255}, // second
	{R: 60, G: 160, B: 60, A: 255},
	{R: 150, G: 60, B: 170, A: 255},
	{R: 120, G: 120, B: 120, A: 255},
}

// WritePNG draws the demand and each policy's ready capacity at the
// target (ready × capacity × target, the demand it can hold without
// being under-provisioned) against absolute time, to dir/<service>.png,
// and returns the path.
func WritePNG(r *Result, dir string) (string, error) {
	if len(r.PlotLoad) == 0 {
		return "", fmt.Errorf("backtest: %s: no plot series (Config.PlotStep is 0)", r.Service)
	}
	n := len(r.PlotLoad)
	group := max(1, (n+maxPlotPoints-1)/maxPlotPoints)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: demand and ready capacity at target %.2f (%s to %s)", r.Service, r.Target,
		time.UnixMilli(r.FromMs).UTC().Format("2006-01-02 15:04"), time.UnixMilli(r.ToMs).UTC().Format("2006-01-02 15:04"))
	p.X.Label.Text = "time (UTC)"
	p.Y.Label.Text = r.Signal
	p.X.Tick.Marker = plot.TimeTicks{Format: "01-02\n15:04"}
	xy := func(vals []float64, scale float64) plotter.XYs {
		var out plotter.XYs
		for i := 0; i < n; i += group {
			sum, cnt := 0.0, 0
			for j := i; j < min(i+group, len(vals)); j++ {
				if !math.IsNaN(vals[j]) {
					sum += vals[j]
					cnt++
				}
			}
			if cnt == 0 {
				continue
			}
			t := float64(r.FromMs+int64(i)*r.PlotStepMs) / 1000
			out = append(out, plotter.XY{X: t, Y: sum / float64(cnt) * scale})
		}
		return out
	}
	load, err := plotter.NewLine(xy(r.PlotLoad, 1))
	if err != nil {
		return "", fmt.Errorf("backtest: plot %s: %w", r.Service, err)
	}
	load.Color = color.Black
	load.Width = vg.Points(1.2)
	p.Add(load)
	p.Legend.Add("demand", load)
	for i := range r.Policies {
		pr := &r.Policies[i]
		l, err := plotter.NewLine(xy(pr.Plot, r.Capacity*r.Target))
		if err != nil {
			return "", fmt.Errorf("backtest: plot %s %s: %w", r.Service, pr.Policy, err)
		}
		l.Color = policyColors[i%len(policyColors)]
		l.Width = vg.Points(0.8)
		if i > 0 {
			l.Dashes = []vg.Length{vg.Points(3), vg.Points(1.5 * float64(i))}
		}
		p.Add(l)
		p.Legend.Add(pr.Policy+" capacity", l)
	}
	p.Legend.Top = true
	path := filepath.Join(dir, fileName(r.Service)+".png")
	if err := p.Save(14*vg.Inch, 5*vg.Inch, path); err != nil {
		return "", fmt.Errorf("backtest: plot %s: %w", path, err)
	}
	return path, nil
}

// fileName makes a service name safe as a file name.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
