// Package train builds the training matrix from the metric history with
// the forecaster's own feature builder, fits XGBoost models with the real
// XGBoost (forecast/python/train.py through a Python interpreter), and
// evaluates models against the last-value and seasonal-naive baselines
// with a rolling-origin backtest.
package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/ebbflow/ebbflow/forecast/features"
)

// Matrix is a feature matrix with its labels, one row per (entity, origin).
// Columns are stored column-major so the Parquet writer can take them as is.
type Matrix struct {
	Spec     features.Spec
	Names    []string
	Entity   []string
	OriginMs []int64 // start of the origin window, Unix ms
	Current  []float64
	Scale    []float64
	X        [][]float64 // X[feature][row]
	// Future[h-1][row] is y at origin+h (NaN when missing); Label the same
	// as a scaled change; Seasonal the seasonal-naive baseline y[origin+h−day].
	Future, Label, Seasonal [][]float64
	// Raw[k][row] is y at origin−k, unscaled: the inputs of the plain
	// lag-only XGBoost baseline trained beside the model (never a model
	// input; the feature builder alone makes those).
	Raw [][]float64
}

// RawLags is how many raw past values (origin included) the matrix carries
// for the plain lag-only XGBoost baseline.
const RawLags = 30

// Rows is the number of rows.
func (m *Matrix) Rows() int { return len(m.OriginMs) }

// Row copies row i's features into dst.
func (m *Matrix) Row(i int, dst []float64) {
	for j := range m.X {
		dst[j] = m.X[j][i]
	}
}

// BuildMatrix builds the rows of every entity of h that has the spec's
// signal, for origins fromStep..toStep (inclusive; clamped to the
// history), skipping origins with no current value. Labels read the
// history past toStep when it has it.
func BuildMatrix(h *features.History, spec features.Spec, fromStep, toStep int64) (*Matrix, error) {
	b, err := features.NewBuilder(spec)
	if err != nil {
		return nil, err
	}
	m := &Matrix{Spec: spec, Names: spec.Names()}
	nf := b.NumFeatures()
	m.X = make([][]float64, nf)
	m.Future = make([][]float64, spec.Horizons)
	m.Label = make([][]float64, spec.Horizons)
	m.Seasonal = make([][]float64, spec.Horizons)
	m.Raw = make([][]float64, RawLags)
	row := make([]float64, nf)
	fromStep, toStep = max(fromStep, h.First), min(toStep, h.Last)
	for _, ent := range h.EntityNames() {
		src := h.Entities[ent]
		y := src.Ring(spec.Signal)
		if y == nil {
			continue
		}
		for t := fromStep; t <= toStep; t++ {
			r, err := b.Row(src, t, row)
			if err != nil {
				continue
			}
			m.Entity = append(m.Entity, ent)
			m.OriginMs = append(m.OriginMs, t*spec.StepS*1000)
			m.Current = append(m.Current, r.Current)
			m.Scale = append(m.Scale, r.Scale)
			for j, v := range row {
				m.X[j] = append(m.X[j], v)
			}
			for k := range RawLags {
				m.Raw[k] = append(m.Raw[k], y.At(t-int64(k)))
			}
			for k := 1; k <= spec.Horizons; k++ {
				f := y.At(t + int64(k))
				m.Future[k-1] = append(m.Future[k-1], f)
				m.Label[k-1] = append(m.Label[k-1], r.Label(f))
				m.Seasonal[k-1] = append(m.Seasonal[k-1], features.SeasonalNaive(y, t, k, spec.DaySteps()))
			}
		}
	}
	if m.Rows() == 0 {
		return nil, fmt.Errorf("train: signal %s: no rows between steps %d and %d", spec.Signal, fromStep, toStep)
	}
	return m, nil
}

// Column names of the non-feature columns of the Parquet matrix.
const (
	ColEntity   = "entity"
	ColOrigin   = "origin_ms"
	ColCurrent  = "current"
	ColScale    = "scale"
	colFuture   = "future_h"
	colLabel    = "label_h"
	colSeasonal = "seasonal_h"
	colRaw      = "r:lag"
)

// FutureCol, LabelCol and SeasonalCol name the per-horizon columns.
func FutureCol(h int) string   { return colFuture + strconv.Itoa(h) }
func LabelCol(h int) string    { return colLabel + strconv.Itoa(h) }
func SeasonalCol(h int) string { return colSeasonal + strconv.Itoa(h) }

// RawCol names the raw value k steps before the origin.
func RawCol(k int) string { return colRaw + strconv.Itoa(k) }

// WriteParquet writes the matrix: entity, origin_ms, current, scale, the
// features by name ("f:" prefixed), then future_h*, label_h*, seasonal_h*
// and the raw lags r:lag0..r:lag29 of the plain baseline.
// NaN (not null) marks a missing value, as XGBoost expects.
func WriteParquet(w io.Writer, m *Matrix) error {
	fields := []arrow.Field{
		{Name: ColEntity, Type: arrow.BinaryTypes.String},
		{Name: ColOrigin, Type: arrow.PrimitiveTypes.Int64},
		{Name: ColCurrent, Type: arrow.PrimitiveTypes.Float64},
		{Name: ColScale, Type: arrow.PrimitiveTypes.Float64},
	}
	cols := [][]float64{m.Current, m.Scale}
	for j, n := range m.Names {
		fields = append(fields, arrow.Field{Name: "f:" + n, Type: arrow.PrimitiveTypes.Float64})
		cols = append(cols, m.X[j])
	}
	for _, g := range []struct {
		name func(int) string
		v    [][]float64
	}{{FutureCol, m.Future}, {LabelCol, m.Label}, {SeasonalCol, m.Seasonal}, {func(i int) string { return RawCol(i - 1) }, m.Raw}} {
		for k := range g.v {
			fields = append(fields, arrow.Field{Name: g.name(k + 1), Type: arrow.PrimitiveTypes.Float64})
			cols = append(cols, g.v[k])
		}
	}
	schema := arrow.NewSchema(fields, nil)
	mem := memory.DefaultAllocator
	arrs := make([]arrow.Array, 0, len(fields))
	sb := array.NewStringBuilder(mem)
	sb.AppendValues(m.Entity, nil)
	arrs = append(arrs, sb.NewArray())
	ib := array.NewInt64Builder(mem)
	ib.AppendValues(m.OriginMs, nil)
	arrs = append(arrs, ib.NewArray())
	for _, c := range cols {
		fb := array.NewFloat64Builder(mem)
		fb.AppendValues(c, nil)
		arrs = append(arrs, fb.NewArray())
	}
	rec := array.NewRecord(schema, arrs, int64(m.Rows()))
	defer rec.Release()
	for _, a := range arrs {
		a.Release()
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(false))
	// Hide Close: the caller owns w.
	fw, err := pqarrow.NewFileWriter(schema, struct{ io.Writer }{w}, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return fmt.Errorf("train: parquet writer: %w", err)
	}
	if err := fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("train: write matrix: %w", err)
	}
	return fw.Close()
}

// ReadParquetColumns reads the named float64 columns of a matrix file
// (used by tests to compare the written matrix with the builder).
func ReadParquetColumns(ctx context.Context, r parquet.ReaderAtSeeker, names []string) (map[string][]float64, []int64, error) {
	pf, err := file.NewParquetReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("train: open matrix: %w", err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, nil, err
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("train: read matrix: %w", err)
	}
	defer tbl.Release()
	sch := tbl.Schema()
	get := func(name string) (*arrow.Chunked, error) {
		idx := sch.FieldIndices(name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("train: matrix has no column %q", name)
		}
		return tbl.Column(idx[0]).Data(), nil
	}
	out := map[string][]float64{}
	for _, n := range names {
		ch, err := get(n)
		if err != nil {
			return nil, nil, err
		}
		var vs []float64
		for _, c := range ch.Chunks() {
			a, ok := c.(*array.Float64)
			if !ok {
				return nil, nil, fmt.Errorf("train: column %q is %s, not float64", n, c.DataType())
			}
			vs = append(vs, a.Float64Values()...)
		}
		out[n] = vs
	}
	ch, err := get(ColOrigin)
	if err != nil {
		return nil, nil, err
	}
	var origins []int64
	for _, c := range ch.Chunks() {
		origins = append(origins, c.(*array.Int64).Int64Values()...)
	}
	return out, origins, nil
}

// sameFloat is equality that treats NaN as equal to NaN.
func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
