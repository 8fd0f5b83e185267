package xgb

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Model is a loaded XGBoost tree ensemble. All its trees are flattened into
// one node array, so scoring a row is a tight loop over contiguous memory.
//
// A Model is immutable after [Load] returns: it is safe for concurrent use by
// any number of goroutines, and models derived from it with
// [Model.Iterations] share its nodes.
type Model struct {
	nodes  []node  // all trees, each in breadth-first order
	roots  []int32 // index of each tree's root in nodes
	depths []int32 // each tree's depth (edges from root to deepest leaf)
	groups []int32 // the output each tree adds to (XGBoost's tree_info)

	iterIndptr []int // trees of boosting round i: [iterIndptr[i], iterIndptr[i+1])
	firstTree  int   // tree index of roots[0] in the full model

	numFeature int
	numOutputs int
	baseScore  []float64 // per output, in output space, as stored
	baseMargin []float32 // per output, the starting margin
	obj        *objective

	attrs        map[string]string
	featureNames []string
	version      []int
}

// node is one tree node, 12 bytes. A row goes from a split to left when
// xs[feat] < thr and to left+1 otherwise, where xs is the row's scoring
// buffer (see Model.fill) and feat picks the slot of the split feature that
// sends NaN the node's default way. A leaf has thr == its (dart-weighted)
// value, left == its own index and feat == the buffer's last slot, which
// always holds -Inf: stepping from a leaf stays on it.
type node struct {
	feat uint32
	thr  float32
	left int32
}

// NumFeatures is the number of input features the model was trained with;
// every row passed to it must have exactly this many values.
func (m *Model) NumFeatures() int { return m.numFeature }

// NumOutputs is the number of values the model predicts per row: 1, or the
// number of targets of a multi-target model.
func (m *Model) NumOutputs() int { return m.numOutputs }

// NumTrees is the number of trees used for prediction.
func (m *Model) NumTrees() int { return len(m.roots) }

// NumIterations is the number of boosting rounds in the model as loaded.
func (m *Model) NumIterations() int { return len(m.iterIndptr) - 1 }

// Objective is the name of the training objective, e.g. "reg:squarederror".
func (m *Model) Objective() string { return m.obj.name }

// BaseScore is the model's intercept for each output, in output space, as
// XGBoost stores it (learner_model_param.base_score).
func (m *Model) BaseScore() []float64 { return slices.Clone(m.baseScore) }

// Attributes returns a copy of the user attributes stored in the model
// (Booster.set_attr, and best_iteration/best_score from early stopping).
func (m *Model) Attributes() map[string]string {
	out := make(map[string]string, len(m.attrs))
	maps.Copy(out, m.attrs)
	return out
}

// Attribute returns one user attribute and whether it is set.
func (m *Model) Attribute(key string) (string, bool) {
	v, ok := m.attrs[key]
	return v, ok
}

// FeatureNames returns a copy of the feature names stored in the model, or
// nil if it was trained without them.
func (m *Model) FeatureNames() []string { return slices.Clone(m.featureNames) }

// Version is the XGBoost version that wrote the model, e.g. [3 2 0].
func (m *Model) Version() []int { return slices.Clone(m.version) }

// BestIteration returns the boosting round early stopping chose (the
// "best_iteration" attribute), and false if the model has none. To predict
// as XGBoost's scikit-learn wrapper does, use m.Iterations(0, best+1).
func (m *Model) BestIteration() (int, bool) {
	s, ok := m.attrs["best_iteration"]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Iterations returns a model that predicts with boosting rounds
// [begin, end) only, like XGBoost's predict(iteration_range=(begin, end));
// end == 0 means the last round. It shares m's nodes and costs little. It is
// an error to narrow an already narrowed model.
func (m *Model) Iterations(begin, end int) (*Model, error) {
	n := m.NumIterations()
	if m.firstTree != 0 || len(m.roots) != m.iterIndptr[n] {
		return nil, fmt.Errorf("xgb: Iterations on a model already narrowed to a range")
	}
	if end == 0 {
		end = n
	}
	if begin < 0 || end > n || begin >= end {
		return nil, fmt.Errorf("xgb: iteration range [%d,%d) is not within the model's %d rounds", begin, end, n)
	}
	lo, hi := m.iterIndptr[begin], m.iterIndptr[end]
	c := *m
	c.roots = m.roots[lo:hi:hi]
	c.depths = m.depths[lo:hi:hi]
	c.groups = m.groups[lo:hi:hi]
	c.firstTree = lo
	return &c, nil
}

// Transform turns a margin into a prediction with the model's
// objective (identity, exp or sigmoid).
func (m *Model) Transform(margin float64) float64 { return m.obj.transform(margin) }
