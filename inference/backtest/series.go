package backtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"github.com/ebbflow/ebbflow/schemas"
)

// Series is one service's load: one value per step from StartMs, NaN
// where the source has no value (a gap is a gap, never zero). Values are
// in the source's unit (requests per step, cores, busy nodes, …); the
// simulation's capacity is in the same unit.
type Series struct {
	Name    string
	Signal  string
	StartMs int64
	StepS   int64
	Values  []float64
}

// StepMs is the step in milliseconds.
func (s *Series) StepMs() int64 { return s.StepS * 1000 }

// EndMs is the end of the last step.
func (s *Series) EndMs() int64 { return s.StartMs + int64(len(s.Values))*s.StepMs() }

// Index is the step holding a time (may be out of range).
func (s *Series) Index(ms int64) int {
	d := ms - s.StartMs
	if d < 0 {
		return int((d - s.StepMs() + 1) / s.StepMs())
	}
	return int(d / s.StepMs())
}

// FromWindows builds a series from the windows of one entity and signal
// (others are refused: a backtest is per service). Windows must share one
// size; a later revision of a window replaces an earlier one.
func FromWindows(name string, ws []schemas.Window) (*Series, error) {
	if len(ws) == 0 {
		return nil, errors.New("backtest: no windows")
	}
	step := ws[0].SizeS
	if step <= 0 {
		return nil, fmt.Errorf("backtest: window of %s/%s has size %d s", ws[0].Entity, ws[0].Signal, step)
	}
	best := map[int64]schemas.Window{}
	for _, w := range ws {
		if w.Entity != ws[0].Entity || w.Signal != ws[0].Signal {
			return nil, fmt.Errorf("backtest: windows of %s/%s and %s/%s mixed: pick one entity and signal", ws[0].Entity, ws[0].Signal, w.Entity, w.Signal)
		}
		if w.SizeS != step {
			return nil, fmt.Errorf("backtest: %s/%s has windows of %d s and %d s: pick one size", w.Entity, w.Signal, step, w.SizeS)
		}
		if old, ok := best[w.StartMs]; ok && old.Revision > w.Revision {
			continue
		}
		best[w.StartMs] = w
	}
	starts := make([]int64, 0, len(best))
	for s := range best {
		starts = append(starts, s)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	stepMs := step * 1000
	first := starts[0]
	n := int((starts[len(starts)-1]-first)/stepMs) + 1
	s := &Series{Name: name, Signal: ws[0].Signal, StartMs: first, StepS: step, Values: make([]float64, n)}
	for i := range s.Values {
		s.Values[i] = math.NaN()
	}
	for _, st := range starts {
		if (st-first)%stepMs != 0 {
			return nil, fmt.Errorf("backtest: window %s/%s at %s is not aligned to its %d s step", ws[0].Entity, ws[0].Signal, time.UnixMilli(st).UTC().Format(time.RFC3339), step)
		}
		s.Values[(st-first)/stepMs] = best[st].Value()
	}
	if name == "" {
		s.Name = ws[0].Entity
	}
	return s, nil
}

// ReadTrace reads a CSV trace with forecast/trace (the reader the trainer
// and `ebbflow history import` use) into a series named name.
func ReadTrace(r io.Reader, name string, o trace.Options) (*Series, error) {
	if o.Entity == "" {
		o.Entity = name
	}
	if o.Signal == "" {
		o.Signal = "qps"
	}
	ws, _, err := trace.Read(r, o)
	if err != nil {
		return nil, err
	}
	return FromWindows(name, ws)
}

// ReadTraceFile is ReadTrace on a file; errors name the file.
func ReadTraceFile(path, name string, o trace.Options) (*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backtest: trace %s: %w", path, err)
	}
	defer f.Close()
	s, err := ReadTrace(f, name, o)
	if err != nil {
		return nil, fmt.Errorf("backtest: trace %s: %w", path, err)
	}
	return s, nil
}

// Quantile is the q-quantile of the values in [from, to) (NaN skipped);
// NaN when there are none.
func (s *Series) Quantile(from, to int, q float64) float64 {
	from, to = max(from, 0), min(to, len(s.Values))
	var v []float64
	for _, x := range s.Values[max(from, 0):max(to, from)] {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	return v[int(math.Round(q*float64(len(v)-1)))]
}
