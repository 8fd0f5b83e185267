// Package model loads ebbflow forecast models (XGBoost JSON with the
// feature spec in their attributes), checks that this forecaster builds
// their spec, and keeps the current set in a [Registry] that hot-reloads
// from a directory on HDFS or local disk with an atomic swap.
package model

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/xgb"
)

// Attributes train.py writes besides the feature spec's (see features).
const (
	AttrTest     = "ebbflow_test"
	AttrTestFrom = "ebbflow_test_from_ms"
	AttrTestTo   = "ebbflow_test_to_ms"
)

// File suffixes of model files in a model directory.
const (
	Suffix   = ".model.json"
	SuffixGz = ".model.json.gz"
)

// Model is a loaded forecast model: the trees, the feature spec they were
// trained with, and their identity. It is immutable and safe for
// concurrent use.
type Model struct {
	XGB     *xgb.Model
	Spec    features.Spec
	ID      string
	Version string
	// Name is the file the model came from.
	Name string
	// Gate is the promotion verdict the model carries (attribute
	// ebbflow_gate); GateReason says why it is missing or unreadable.
	Gate       Verdict
	GateReason Reason
	GateErr    error
	// TestFromMs and TestToMs are the trainer's test span (origins; 0 when
	// the model does not say) and Test its figures there, with the
	// baselines.
	TestFromMs, TestToMs int64
	Test                 []HorizonMetric
}

// Signal is the signal the model forecasts.
func (m *Model) Signal() string { return m.Spec.Signal }

// Load reads a model and refuses it unless its spec is one this package
// builds and its shape (features, outputs, feature names) matches the spec.
// A name ending in .gz is decompressed.
func Load(r io.Reader, name string) (*Model, error) {
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("model %s: not gzip: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	x, err := xgb.Load(r)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	return FromXGB(x, name)
}

// LoadBytes is Load from memory.
func LoadBytes(b []byte, name string) (*Model, error) { return Load(bytes.NewReader(b), name) }

// FromXGB checks a scorer model's attributes and wraps it.
func FromXGB(x *xgb.Model, name string) (*Model, error) {
	raw, ok := x.Attribute(features.AttrSpec)
	if !ok {
		return nil, fmt.Errorf("model %s: no %s attribute: not an ebbflow forecast model (train it with `ebbflow forecast train`)", name, features.AttrSpec)
	}
	spec, err := features.ParseSpec([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("model %s: refused: %w", name, err)
	}
	if x.NumFeatures() != spec.NumFeatures() {
		return nil, fmt.Errorf("model %s: refused: it reads %d features, its spec builds %d", name, x.NumFeatures(), spec.NumFeatures())
	}
	if x.NumOutputs() != spec.Horizons {
		return nil, fmt.Errorf("model %s: refused: %d outputs for %d horizons", name, x.NumOutputs(), spec.Horizons)
	}
	if fn := x.FeatureNames(); len(fn) > 0 && !slices.Equal(fn, spec.Names()) {
		return nil, fmt.Errorf("model %s: refused: its feature names differ from its spec's", name)
	}
	id, _ := x.Attribute(features.AttrModelID)
	ver, _ := x.Attribute(features.AttrVersion)
	if id == "" {
		id = strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), Suffix)
	}
	m := &Model{XGB: x, Spec: spec, ID: id, Version: ver, Name: name}
	raw, present := x.Attribute(AttrGate)
	m.Gate, m.GateReason, m.GateErr = ParseVerdict(raw, present)
	if v, ok := x.Attribute(AttrTestFrom); ok {
		m.TestFromMs, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := x.Attribute(AttrTestTo); ok {
		m.TestToMs, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := x.Attribute(AttrTest); ok {
		_ = json.Unmarshal([]byte(v), &m.Test) // informative only
	}
	return m, nil
}

// Predictor scores rows of one model with its own builder. It is not safe
// for concurrent use (the builder keeps scratch space).
type Predictor struct {
	M   *Model
	b   *features.Builder
	row []float64
	out []float64
}

// NewPredictor returns a predictor for m.
func NewPredictor(m *Model) *Predictor {
	b, err := features.NewBuilder(m.Spec)
	if err != nil {
		panic(err) // Load validated the spec
	}
	return &Predictor{M: m, b: b, row: make([]float64, b.NumFeatures()), out: make([]float64, m.Spec.Horizons)}
}

// Forecast builds the row of src at origin and writes the forecast value
// for each horizon into dst (len Horizons).
func (p *Predictor) Forecast(src features.Source, origin int64, dst []float64) (features.Row, error) {
	r, err := p.b.Row(src, origin, p.row)
	if err != nil {
		return r, err
	}
	p.M.XGB.PredictMulti(p.row, p.out)
	for k, v := range p.out {
		dst[k] = r.Value(v)
	}
	return r, nil
}

// SetAttributes returns an XGBoost JSON model with attrs added to (or
// replacing those in) learner.attributes, the map booster.set_attr writes;
// an empty value removes the attribute. Numbers keep their exact text, so
// the trees are unchanged.
func SetAttributes(raw []byte, attrs map[string]string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("model: not XGBoost JSON: %w", err)
	}
	learner, ok := doc["learner"].(map[string]any)
	if !ok {
		return nil, errors.New("model: not XGBoost JSON: no learner object")
	}
	a, _ := learner["attributes"].(map[string]any)
	if a == nil {
		a = map[string]any{}
		learner["attributes"] = a
	}
	for k, v := range attrs {
		if v == "" {
			delete(a, k)
			continue
		}
		a[k] = v
	}
	return json.Marshal(doc)
}
