package xgb

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"
)

// stackFeatures is the widest row scored without touching the heap: the
// float32 scoring buffer lives on the stack up to this many features.
const stackFeatures = 256

// blockRows is how many rows the batch kernel scores per pass over the
// trees: a tree's nodes stay in cache for the whole block.
const blockRows = 64

// bufPool holds scoring buffers for rows wider than stackFeatures.
var bufPool = sync.Pool{New: func() any { return new([]float32) }}

// Predict returns the model's prediction for one row (the objective's output
// transform applied), as XGBoost's predict() would. row must have exactly
// NumFeatures values; NaN means missing. It does not allocate for rows of up
// to 256 features. Predict panics if len(row) != NumFeatures() or the model
// has more than one output (use PredictMulti).
func (m *Model) Predict(row []float64) float64 {
	return m.obj.transform(m.PredictMargin(row))
}

// PredictMargin returns the untransformed sum of the base margin and the
// trees' leaf values for one row, as XGBoost's predict(output_margin=True).
// It panics like Predict.
func (m *Model) PredictMargin(row []float64) float64 {
	if m.numOutputs != 1 {
		panic(fmt.Sprintf("xgb: Predict on a model with %d outputs: use PredictMulti", m.numOutputs))
	}
	m.checkRow(len(row))
	if m.numFeature > stackFeatures {
		p := m.heapBuf(1)
		acc := m.margin(m.fill((*p)[:0], row))
		bufPool.Put(p)
		return float64(acc)
	}
	var buf [2 * stackFeatures]float32
	return float64(m.margin(m.fill(buf[:0], row)))
}

// PredictMulti writes the prediction for each of the model's outputs for one
// row into out, which must have NumOutputs elements. It works for
// single-output models too. It does not allocate for rows of up to 256
// features.
func (m *Model) PredictMulti(row []float64, out []float64) {
	m.PredictMultiMargin(row, out)
	for k := range out {
		out[k] = m.obj.transform(out[k])
	}
}

// PredictMultiMargin is PredictMulti without the output transform.
func (m *Model) PredictMultiMargin(row []float64, out []float64) {
	m.checkRow(len(row))
	if len(out) != m.numOutputs {
		panic(fmt.Sprintf("xgb: output slice has %d elements, model has %d outputs", len(out), m.numOutputs))
	}
	var acc [blockRows]float32
	accs := acc[:]
	if m.numOutputs > blockRows {
		accs = make([]float32, m.numOutputs)
	}
	var xs []float32
	var p *[]float32
	if m.numFeature > stackFeatures {
		p = m.heapBuf(1)
		xs = m.fill((*p)[:0], row)
	} else {
		var buf [2 * stackFeatures]float32
		xs = m.fill(buf[:0], row)
	}
	m.scoreBlock(xs, 1, accs[:m.numOutputs])
	if p != nil {
		bufPool.Put(p)
	}
	for k := range out {
		out[k] = float64(accs[k])
	}
}

func (m *Model) checkRow(n int) {
	if n != m.numFeature {
		panic(fmt.Sprintf("xgb: row has %d features, model has %d", n, m.numFeature))
	}
}

// stride is the length of one row's scoring buffer: two slots per feature
// and the -Inf slot leaves point at.
func (m *Model) stride() int { return 2*m.numFeature + 1 }

func (m *Model) heapBuf(rows int) *[]float32 {
	p := bufPool.Get().(*[]float32)
	if n := rows * m.stride(); cap(*p) < n {
		*p = make([]float32, 0, n)
	}
	return p
}

// fill appends row's scoring buffer to xs: for each feature f, slot 2f holds
// float32(x) or -Inf if x is NaN, slot 2f+1 float32(x) or +Inf if x is NaN;
// a last slot holds -Inf. XGBoost compares float32(x) < threshold; with
// finite thresholds a NaN then goes left through slot 2f and right through
// slot 2f+1, which is how a node's default direction is honoured without a
// branch.
func (m *Model) fill(xs []float32, row []float64) []float32 {
	for _, x := range row {
		v := float32(x)
		lo, hi := v, v
		if v != v {
			lo, hi = negInf, posInf
		}
		xs = append(xs, lo, hi)
	}
	return append(xs, negInf)
}

var (
	negInf = float32(math.Inf(-1))
	posInf = float32(math.Inf(1))
)

// next is the child of nd that the row with scoring buffer xs goes to:
// left if xs[feat] < thr, else left+1. Written without a branch: which way
// a row goes is data, and mispredicted branches would dominate the cost.
//
// It reads xs without a bounds check: Load guarantees feat < stride for
// every node, and every caller passes a full stride-long buffer.
func (nd *node) next(xs *float32) int32 {
	x := *(*float32)(unsafe.Add(unsafe.Pointer(xs), uintptr(nd.feat)*4))
	return nd.left + b2i(!(x < nd.thr))
}

// at returns node i without a bounds check: Load guarantees that every
// child index, and so every index a traversal reaches, is within nodes.
func at(nodes *node, i int32) *node {
	return (*node)(unsafe.Add(unsafe.Pointer(nodes), uintptr(i)*unsafe.Sizeof(node{})))
}

func b2i(b bool) int32 {
	var i int32
	if b {
		i = 1
	}
	return i
}

// margin scores one row of a single-output model. It walks four trees at a
// time, so the CPU overlaps four independent chains of dependent loads, and
// adds their leaves in tree order so the float32 sum matches XGBoost's.
func (m *Model) margin(buf []float32) float32 {
	if len(buf) != m.stride() {
		panic("xgb: scoring buffer of the wrong length")
	}
	xs := &buf[0]
	nodes := &m.nodes[0]
	roots := m.roots
	depths := m.depths[:len(roots)]
	acc := m.baseMargin[0]
	t := 0
	for ; t+4 <= len(roots); t += 4 {
		i0, i1, i2, i3 := roots[t], roots[t+1], roots[t+2], roots[t+3]
		depth := max(depths[t], depths[t+1], depths[t+2], depths[t+3])
		for d := depth; d > 0; d-- {
			i0 = at(nodes, i0).next(xs)
			i1 = at(nodes, i1).next(xs)
			i2 = at(nodes, i2).next(xs)
			i3 = at(nodes, i3).next(xs)
		}
		acc += at(nodes, i0).thr
		acc += at(nodes, i1).thr
		acc += at(nodes, i2).thr
		acc += at(nodes, i3).thr
	}
	for ; t < len(roots); t++ {
		i := roots[t]
		for d := depths[t]; d > 0; d-- {
			i = at(nodes, i).next(xs)
		}
		acc += at(nodes, i).thr
	}
	return acc
}

// scoreBlock adds the trees' leaf values for nrows rows (their scoring
// buffers back to back in xs) to acc (nrows × NumOutputs, row-major), which
// it first sets to the base margins. It walks tree by tree so each tree's
// nodes are fetched once per block, and steps four rows through a tree
// together so the CPU overlaps their dependent loads. Each row's sum is
// accumulated in float32 in tree order, as XGBoost does.
func (m *Model) scoreBlock(xs []float32, nrows int, acc []float32) {
	nout := m.numOutputs
	for r := 0; r < nrows; r++ {
		copy(acc[r*nout:(r+1)*nout], m.baseMargin)
	}
	stride := m.stride()
	if len(xs) != nrows*stride {
		panic("xgb: scoring buffers of the wrong length")
	}
	nodes := &m.nodes[0]
	depths := m.depths[:len(m.roots)]
	groups := m.groups[:len(m.roots)]
	for t, root := range m.roots {
		depth := depths[t]
		g := int(groups[t])
		r := 0
		for ; r+4 <= nrows; r += 4 {
			x0, x1, x2, x3 := &xs[r*stride], &xs[(r+1)*stride], &xs[(r+2)*stride], &xs[(r+3)*stride]
			i0, i1, i2, i3 := root, root, root, root
			for d := depth; d > 0; d-- {
				i0 = at(nodes, i0).next(x0)
				i1 = at(nodes, i1).next(x1)
				i2 = at(nodes, i2).next(x2)
				i3 = at(nodes, i3).next(x3)
			}
			acc[r*nout+g] += at(nodes, i0).thr
			acc[(r+1)*nout+g] += at(nodes, i1).thr
			acc[(r+2)*nout+g] += at(nodes, i2).thr
			acc[(r+3)*nout+g] += at(nodes, i3).thr
		}
		for ; r < nrows; r++ {
			x := &xs[r*stride]
			i := root
			for d := depth; d > 0; d-- {
				i = at(nodes, i).next(x)
			}
			acc[r*nout+g] += at(nodes, i).thr
		}
	}
}

// PredictMatrix writes predictions for nrows rows of a row-major matrix
// (data[r*ncols+c] is feature c of row r; NaN is missing) into out, which
// must hold nrows × NumOutputs values (row r's outputs at
// out[r*NumOutputs:]). ncols must equal NumFeatures. It runs on the calling
// goroutine; see PredictMatrixParallel.
func (m *Model) PredictMatrix(data []float64, nrows, ncols int, out []float64) {
	m.predictMatrix(data, nrows, ncols, out, 1, true)
}

// PredictMatrixMargin is PredictMatrix without the output transform.
func (m *Model) PredictMatrixMargin(data []float64, nrows, ncols int, out []float64) {
	m.predictMatrix(data, nrows, ncols, out, 1, false)
}

// PredictMatrixParallel is PredictMatrix spread over up to workers
// goroutines, each taking blocks of 64 rows.
func (m *Model) PredictMatrixParallel(data []float64, nrows, ncols int, out []float64, workers int) {
	m.predictMatrix(data, nrows, ncols, out, workers, true)
}

// PredictBatch writes the predictions for rows into out, like PredictMatrix
// for rows that are separate slices. out must hold len(rows) × NumOutputs
// values.
func (m *Model) PredictBatch(rows [][]float64, out []float64) {
	for _, r := range rows {
		m.checkRow(len(r))
	}
	m.checkOut(len(rows), len(out))
	m.forBlocks(len(rows), 1, out, true, func(xs []float32, lo, hi int) []float32 {
		for _, r := range rows[lo:hi] {
			xs = m.fill(xs, r)
		}
		return xs
	})
}

func (m *Model) checkOut(nrows, n int) {
	if n != nrows*m.numOutputs {
		panic(fmt.Sprintf("xgb: output slice has %d elements, want %d rows × %d outputs", n, nrows, m.numOutputs))
	}
}

func (m *Model) predictMatrix(data []float64, nrows, ncols int, out []float64, workers int, transform bool) {
	m.checkRow(ncols)
	if nrows < 0 || len(data) != nrows*ncols {
		panic(fmt.Sprintf("xgb: matrix has %d values, want %d rows × %d columns", len(data), nrows, ncols))
	}
	m.checkOut(nrows, len(out))
	m.forBlocks(nrows, workers, out, transform, func(xs []float32, lo, hi int) []float32 {
		for r := lo; r < hi; r++ {
			xs = m.fill(xs, data[r*ncols:(r+1)*ncols])
		}
		return xs
	})
}

// forBlocks scores rows [0,nrows) in blocks of blockRows on up to workers
// goroutines; load appends the scoring buffers of rows [lo,hi) to xs.
func (m *Model) forBlocks(nrows, workers int, out []float64, transform bool, load func(xs []float32, lo, hi int) []float32) {
	nblocks := (nrows + blockRows - 1) / blockRows
	workers = max(1, min(workers, nblocks))
	var next atomic.Int64
	work := func() {
		xs := make([]float32, 0, blockRows*m.stride())
		acc := make([]float32, blockRows*m.numOutputs)
		for {
			b := int(next.Add(1) - 1)
			if b >= nblocks {
				return
			}
			lo, hi := b*blockRows, min((b+1)*blockRows, nrows)
			xs = load(xs[:0], lo, hi)
			n := (hi - lo) * m.numOutputs
			m.scoreBlock(xs, hi-lo, acc[:n])
			o := out[lo*m.numOutputs : hi*m.numOutputs]
			if transform {
				for k, a := range acc[:n] {
					o[k] = m.obj.transform(float64(a))
				}
			} else {
				for k, a := range acc[:n] {
					o[k] = float64(a)
				}
			}
		}
	}
	if workers == 1 {
		work()
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(work)
	}
	wg.Wait()
}
