// Package xgbforecast serves ebbflow's XGBoost forecaster to the node-mixing
// backtest: it trains the forecaster's models (forecast/train, real XGBoost
// through forecast/python/train.py) on the replay's warm-up days only, and
// forecasts each minute of the replay with the same feature builder and Go
// scorer the forecaster service uses (forecast/model).
package xgbforecast

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/forecast/train"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// Options say where Python and the trainer script are (empty: the
// forecast/train defaults: $EBBFLOW_PYTHON or .venv, train.py found
// upwards) and where progress goes.
type Options struct {
	Python, Script string
	Rounds         int
	Progress       io.Writer
}

// Trainer returns a mixing.ShortTermTrainer that fits XGBoost on the
// replay's demand before trainTo, less the horizon, so no training label
// falls in the measured span.
func Trainer(o Options) mixing.ShortTermTrainer {
	return func(ctx context.Context, start time.Time, demand []float64, trainTo int) (mixing.ShortTermForecaster, error) {
		const entity, signal, horizons = "svc/backtest/mixing/group", schemas.SignalQPS, 5
		ws := make([]schemas.Window, len(demand))
		for i, v := range demand {
			s := start.Add(time.Duration(i) * time.Minute).UnixMilli()
			ws[i] = schemas.Window{Entity: entity, Signal: signal, Kind: schemas.KindGauge, SizeS: 60, StartMs: s, EndMs: s + 60_000,
				Count: 1, Sum: v, Min: v, Max: v, Mean: v, Last: v, P50: v, P95: v, P99: v}
		}
		h, err := features.FromWindows(ws, 60)
		if err != nil {
			return nil, err
		}
		out, err := os.MkdirTemp("", "mixing-xgb-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(out)
		rounds := o.Rounds
		if rounds == 0 {
			rounds = 200
		}
		metas, err := train.Train(ctx, h, train.Options{Python: o.Python, Script: o.Script, Out: out, Signals: []string{signal},
			Horizons: horizons, FromStep: h.First, ToStep: h.First + int64(trainTo) - 1 - horizons, ValFrac: 0.2, Rounds: rounds,
			Version: "backtest", ModelPrefix: "mixing-backtest", Progress: o.Progress})
		if err != nil {
			return nil, err
		}
		f, err := os.Open(metas[0].ModelPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		m, err := model.Load(f, filepath.Base(metas[0].ModelPath))
		if err != nil {
			return nil, fmt.Errorf("xgbforecast: load %s: %w", metas[0].ModelPath, err)
		}
		return &forecaster{p: model.NewPredictor(m), src: h.Entities[entity], first: h.First, buf: make([]float64, horizons)}, nil
	}
}

// forecaster scores one origin at a time; the feature builder reads only
// the origin and the minutes before it.
type forecaster struct {
	p     *model.Predictor
	src   features.Entity
	first int64
	buf   []float64
}

// Forecast implements mixing.ShortTermForecaster.
func (f *forecaster) Forecast(now int, dst []float64) bool {
	if _, err := f.p.Forecast(f.src, f.first+int64(now), f.buf); err != nil {
		return false
	}
	copy(dst, f.buf)
	return true
}
