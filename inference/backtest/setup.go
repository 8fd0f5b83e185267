package backtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/internal/history"
)

// Policy names accepted by [Build].
const (
	PolicyEbbflow   = "ebbflow"
	PolicyLastValue = "last-value"
	PolicyHPA       = "hpa"
	PolicyStatic    = "static"
)

// PolicyNames lists the policies [Build] knows, in table order.
var PolicyNames = []string{PolicyEbbflow, PolicyLastValue, PolicyHPA, PolicyStatic}

// Setup is everything [Build] needs to make the policies of one run.
type Setup struct {
	Series *Series
	Config Config
	// HPA is the HPA's set-up (DefaultHPAConfig).
	HPA HPAConfig
	// Decider is the autoscale policy ebbflow and last-value run
	// (DeciderPolicy when zero).
	Decider *autoscale.Policy
	// Model forecasts for the ebbflow policy; required when it runs.
	Model *model.Model
	// ModelSeen is the time span the model's training saw (train and
	// validation); the scored span must not overlap it.
	ModelSeen Span
}

// Span is a time span in ms (zero: unknown).
type Span struct{ FromMs, ToMs int64 }

// ParsePolicies splits a comma-separated list and refuses unknown or
// repeated names, naming them.
func ParsePolicies(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		known := false
		for _, k := range PolicyNames {
			known = known || k == n
		}
		if !known {
			return nil, fmt.Errorf("policies: unknown policy %q (known: %s)", n, strings.Join(PolicyNames, ", "))
		}
		if seen[n] {
			return nil, fmt.Errorf("policies: %q given twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("policies: none given (known: %s)", strings.Join(PolicyNames, ", "))
	}
	return out, nil
}

// Build makes fresh policies by name, with notes for the result.
func Build(names []string, su Setup) ([]Policy, []string, error) {
	var ps []Policy
	var notes []string
	dpol := DeciderPolicy(su.Config, su.Series.Signal)
	if su.Decider != nil {
		dpol = su.Decider.Clone()
	}
	if err := dpol.Validate(); err != nil {
		return nil, nil, fmt.Errorf("backtest: decider policy: %w", err)
	}
	for _, n := range names {
		switch n {
		case PolicyEbbflow:
			f, err := NewModelForecaster(su.Model, su.Series)
			if err != nil {
				return nil, nil, err
			}
			if err := checkHeldOut(su); err != nil {
				return nil, nil, err
			}
			ps = append(ps, NewDecider(n, dpol, su.Series.Signal, f))
			notes = append(notes, "ebbflow forecasts with "+f.Name())
			if miss := f.MissingInputs(); len(miss) > 0 {
				notes = append(notes, fmt.Sprintf("the model also reads %s, which a single series lacks: those features are missing values", strings.Join(miss, ", ")))
			}
		case PolicyLastValue:
			h := 5
			if su.Model != nil {
				h = su.Model.Spec.Horizons
			}
			ps = append(ps, NewDecider(n, dpol, su.Series.Signal, LastValue{H: h}))
		case PolicyHPA:
			ps = append(ps, NewHPA(su.HPA, su.Config.MinReplicas, su.Config.MaxReplicas))
		case PolicyStatic:
			st, err := StaticFor(su.Series, su.Config)
			if err != nil {
				return nil, nil, err
			}
			ps = append(ps, st)
			n := min(max(st.n, su.Config.MinReplicas), su.Config.MaxReplicas)
			note := fmt.Sprintf("static holds %d replicas, the span's peak at the target (it knows the peak in advance)", n)
			if n < st.n {
				note = fmt.Sprintf("static holds %d replicas, max replicas; the span's peak needs %d at the target", n, st.n)
			}
			notes = append(notes, note)
		default:
			return nil, nil, fmt.Errorf("backtest: unknown policy %q (known: %s)", n, strings.Join(PolicyNames, ", "))
		}
	}
	return ps, notes, nil
}

// checkHeldOut refuses to score a model on time its training saw.
func checkHeldOut(su Setup) error {
	seen := su.ModelSeen
	if seen.ToMs == 0 {
		return nil
	}
	from, to, err := su.Config.span(su.Series)
	if err != nil {
		return err
	}
	if from <= seen.ToMs && seen.FromMs < to {
		return fmt.Errorf("backtest: model %s saw %s to %s in training (train and validation), which overlaps the scored span %s to %s: score a later span (--from after %s) or train on an earlier part (`ebbflow forecast train --until`)",
			su.Model.ID, fmtMs(seen.FromMs), fmtMs(seen.ToMs), fmtMs(from), fmtMs(to), fmtMs(seen.ToMs))
	}
	return nil
}

// LoadModel loads the forecast model of a signal from a local model
// directory through the forecast model registry (the forecaster's own
// loader and checks), with the span its training saw, read from the
// model's attributes and its <signal>.meta.json when present.
func LoadModel(ctx context.Context, dir, signal string, log *slog.Logger) (*model.Model, Span, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg := model.NewRegistry(history.LocalFS{}, dir, log, nil)
	loadErr := reg.Reload(ctx)
	m := reg.Current().For(signal)
	if m == nil {
		if loadErr != nil {
			return nil, Span{}, fmt.Errorf("backtest: models %s: no usable model for %s: %w", dir, signal, loadErr)
		}
		var have []string
		for s := range reg.Current().BySignal {
			have = append(have, s)
		}
		sort.Strings(have)
		return nil, Span{}, fmt.Errorf("backtest: models %s: no model for signal %s (have: %s)", dir, signal, strings.Join(have, ", "))
	}
	return m, seenSpan(m, filepath.Join(dir, signal+".meta.json")), nil
}

// seenSpan is the widest [from, to] among the model's train_from/to
// attributes and the meta file's *_from_ms / *_to_ms fields, except a
// test span (reported, never used to choose).
func seenSpan(m *model.Model, metaPath string) Span {
	var sp Span
	widen := func(from, to int64) {
		if from > 0 && (sp.FromMs == 0 || from < sp.FromMs) {
			sp.FromMs = from
		}
		if to > sp.ToMs {
			sp.ToMs = to
		}
	}
	var f, t int64
	if v, ok := m.XGB.Attribute(features.AttrTrainFrom); ok {
		fmt.Sscan(v, &f)
	}
	if v, ok := m.XGB.Attribute(features.AttrTrainTo); ok {
		fmt.Sscan(v, &t)
	}
	widen(f, t)
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return sp
	}
	var meta map[string]any
	if json.Unmarshal(b, &meta) != nil {
		return sp
	}
	for k, v := range meta {
		x, ok := v.(float64)
		if !ok || strings.HasPrefix(k, "test") {
			continue
		}
		switch {
		case strings.HasSuffix(k, "_from_ms"):
			widen(int64(x), 0)
		case strings.HasSuffix(k, "_to_ms"):
			widen(0, int64(x))
		}
	}
	return sp
}

// ErrNoModel is returned when the ebbflow policy runs without a model.
var ErrNoModel = errors.New("the ebbflow policy needs a forecast model (--models DIR)")
