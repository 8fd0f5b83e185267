package train

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gonum.org/v1/plot"
)

// TestPlotAxisIsUTCClock: the plots' x axis labels are UTC clock times of
// the forecast targets, not hours from the plot start.
func TestPlotAxisIsUTCClock(t *testing.T) {
	start := time.Date(2024, 5, 6, 22, 0, 0, 0, time.UTC)
	ev := &Evaluation{Signal: "qps", ModelID: "m", Version: "v", Plot: make([][]PlotPoint, 1)}
	for i := range 240 {
		at := start.Add(time.Duration(i) * time.Minute).UnixMilli()
		ev.Plot[0] = append(ev.Plot[0], PlotPoint{AtMs: at, Actual: float64(i), Forecast: float64(i) + 1})
	}
	dir := t.TempDir()
	paths, err := ev.WritePlots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || filepath.Base(paths[0]) != "qps_h1.png" {
		t.Fatalf("plots %v", paths)
	}
	if fi, err := os.Stat(paths[0]); err != nil || fi.Size() == 0 {
		t.Fatalf("plot file: %v", err)
	}
	tk := timeTicks(ev.Plot[0][0].AtMs, ev.Plot[0][len(ev.Plot[0])-1].AtMs)
	ticks := tk.Ticks(float64(start.Unix()), float64(start.Add(239*time.Minute).Unix()))
	labelled := 0
	for _, tick := range ticks {
		if tick.Label == "" {
			continue
		}
		labelled++
		want := time.Unix(int64(tick.Value), 0).UTC().Format("15:04")
		if int64(tick.Value)%600 != 0 {
			t.Errorf("tick at %v is not on a round clock time", tick.Value)
		}
		if tick.Label != want {
			t.Errorf("tick at %v labelled %q, want the UTC clock %q", tick.Value, tick.Label, want)
		}
	}
	if labelled < 2 || labelled > 9 {
		t.Fatalf("only %d labelled ticks", labelled)
	}
	var _ plot.Ticker = tk
}
