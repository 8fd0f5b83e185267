package xgb

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// The subset of XGBoost's JSON model schema the scorer reads
// (xgboost/doc/model.schema). Numeric parameters are stored as strings.
type jsonModel struct {
	Learner *struct {
		Attributes        map[string]string `json:"attributes"`
		FeatureNames      []string          `json:"feature_names"`
		FeatureTypes      []string          `json:"feature_types"`
		GradientBooster   json.RawMessage   `json:"gradient_booster"`
		LearnerModelParam *struct {
			BaseScore  *string `json:"base_score"`
			NumClass   string  `json:"num_class"`
			NumFeature *string `json:"num_feature"`
			NumTarget  string  `json:"num_target"`
		} `json:"learner_model_param"`
		Objective *struct {
			Name string `json:"name"`
		} `json:"objective"`
	} `json:"learner"`
	Version []int `json:"version"`
}

type jsonBooster struct {
	Name       string       `json:"name"`
	Model      *jsonTrees   `json:"model"`       // gbtree
	GBTree     *jsonBooster `json:"gbtree"`      // dart wraps a gbtree
	WeightDrop []float32    `json:"weight_drop"` // dart
}

type jsonTrees struct {
	Param struct {
		NumParallelTree string `json:"num_parallel_tree"`
		NumTrees        string `json:"num_trees"`
	} `json:"gbtree_model_param"`
	IterationIndptr []int      `json:"iteration_indptr"`
	TreeInfo        []int      `json:"tree_info"`
	Trees           []jsonTree `json:"trees"`
}

type jsonTree struct {
	LeftChildren    []int32   `json:"left_children"`
	RightChildren   []int32   `json:"right_children"`
	SplitIndices    []int64   `json:"split_indices"`
	SplitConditions []float32 `json:"split_conditions"`
	DefaultLeft     []flag    `json:"default_left"`
	SplitType       []int     `json:"split_type"`
	Categories      []int     `json:"categories"`
	CategoriesNodes []int     `json:"categories_nodes"`
	TreeParam       struct {
		NumNodes       string `json:"num_nodes"`
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"tree_param"`
}

// flag reads XGBoost's booleans, written as 0/1 by current versions and as
// true/false by some older ones.
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "1", "true":
		*f = true
	case "0", "false":
		*f = false
	default:
		return fmt.Errorf("want 0, 1, true or false, got %s", b)
	}
	return nil
}

// LoadFile reads a model from an XGBoost JSON model file. A name ending in
// ".gz" is decompressed first.
func LoadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("xgb: %w", err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xgb: %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	m, err := Load(r)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return m, nil
}

// Load reads a model in XGBoost's JSON format, as written by
// Booster.save_model("*.json") or Booster.save_raw("json"). It validates
// the whole model (tree structure, feature indices, objective) so that
// prediction never fails later. UBJSON and the legacy binary format are not
// read: convert them with XGBoost first.
func Load(r io.Reader) (*Model, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("xgb: reading model: %w", err)
	}
	// A JSON object continues with a quote, space or '}'; a UBJSON one with
	// a type marker.
	if t := bytes.TrimSpace(data); len(t) > 1 && t[0] == '{' && !strings.ContainsRune("\" \t\r\n}", rune(t[1])) {
		return nil, errors.New("xgb: model looks like UBJSON, not JSON: save it with a .json file name")
	}
	var jm jsonModel
	if err := json.Unmarshal(data, &jm); err != nil {
		return nil, fmt.Errorf("xgb: model is not valid XGBoost JSON: %w", err)
	}
	return build(&jm)
}

func build(jm *jsonModel) (*Model, error) {
	l := jm.Learner
	if l == nil {
		return nil, errors.New(`xgb: model has no "learner" object: not an XGBoost JSON model`)
	}
	if l.LearnerModelParam == nil || l.LearnerModelParam.BaseScore == nil || l.LearnerModelParam.NumFeature == nil {
		return nil, errors.New(`xgb: learner.learner_model_param with base_score and num_feature is missing`)
	}
	if l.Objective == nil || l.Objective.Name == "" {
		return nil, errors.New(`xgb: learner.objective.name is missing`)
	}
	m := &Model{
		attrs:        l.Attributes,
		featureNames: l.FeatureNames,
		version:      jm.Version,
	}
	obj, ok := objectives[l.Objective.Name]
	if !ok {
		return nil, fmt.Errorf("xgb: objective %q is not supported (supported: %s)", l.Objective.Name, supportedObjectives())
	}
	m.obj = obj
	p := l.LearnerModelParam
	nf, err := strconv.Atoi(*p.NumFeature)
	if err != nil || nf < 0 {
		return nil, fmt.Errorf("xgb: learner_model_param.num_feature %q is not a count", *p.NumFeature)
	}
	m.numFeature = nf
	if p.NumClass != "" && p.NumClass != "0" {
		return nil, fmt.Errorf("xgb: multi-class models (num_class %s) are not supported", p.NumClass)
	}
	numTarget := 1
	if p.NumTarget != "" {
		if numTarget, err = strconv.Atoi(p.NumTarget); err != nil || numTarget < 1 {
			return nil, fmt.Errorf("xgb: learner_model_param.num_target %q is not a positive count", p.NumTarget)
		}
	}
	base, err := parseBaseScore(*p.BaseScore)
	if err != nil {
		return nil, err
	}
	switch {
	case len(base) == numTarget:
	case len(base) == 1:
		for len(base) < numTarget {
			base = append(base, base[0])
		}
	default:
		return nil, fmt.Errorf("xgb: base_score has %d values for %d targets", len(base), numTarget)
	}
	m.baseScore = make([]float64, numTarget)
	m.baseMargin = make([]float32, numTarget)
	for i, b := range base {
		m.baseScore[i] = float64(b)
		mg, err := obj.probToMargin(float64(b))
		if err != nil {
			return nil, fmt.Errorf("xgb: base_score %v with objective %s: %w", b, obj.name, err)
		}
		m.baseMargin[i] = float32(mg)
	}
	if len(l.FeatureNames) != 0 && len(l.FeatureNames) != nf {
		return nil, fmt.Errorf("xgb: %d feature names for %d features", len(l.FeatureNames), nf)
	}

	if len(l.GradientBooster) == 0 {
		return nil, errors.New("xgb: learner.gradient_booster is missing")
	}
	var gb jsonBooster
	if err := json.Unmarshal(l.GradientBooster, &gb); err != nil {
		return nil, fmt.Errorf("xgb: gradient_booster: %w", err)
	}
	var weights []float32
	switch gb.Name {
	case "gbtree":
	case "dart":
		if gb.GBTree == nil {
			return nil, errors.New(`xgb: dart booster has no "gbtree" object`)
		}
		weights = gb.WeightDrop
		gb = *gb.GBTree
	case "gblinear":
		return nil, errors.New("xgb: gblinear boosters are not supported (only gbtree and dart)")
	default:
		return nil, fmt.Errorf("xgb: gradient booster %q is not supported (only gbtree and dart)", gb.Name)
	}
	if gb.Model == nil {
		return nil, errors.New(`xgb: gradient_booster.model is missing`)
	}
	if err := m.buildTrees(gb.Model, weights, numTarget); err != nil {
		return nil, err
	}
	m.numOutputs = numTarget
	return m, nil
}

// parseBaseScore reads "0.5", "5E-1", "[5E-1]" or "[1E0,2E0]". XGBoost keeps
// the intercept in float32.
func parseBaseScore(s string) ([]float32, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(t, "[")
	t = strings.TrimSuffix(t, "]")
	var out []float32
	for _, f := range strings.Split(t, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("xgb: learner_model_param.base_score %q is not a number or list of numbers", s)
		}
		out = append(out, float32(v))
	}
	return out, nil
}

func (m *Model) buildTrees(jt *jsonTrees, weights []float32, numTarget int) error {
	n := len(jt.Trees)
	if nt, err := strconv.Atoi(jt.Param.NumTrees); jt.Param.NumTrees != "" && (err != nil || nt != n) {
		return fmt.Errorf("xgb: gbtree_model_param.num_trees %q, but %d trees are stored", jt.Param.NumTrees, n)
	}
	if len(jt.TreeInfo) != n {
		return fmt.Errorf("xgb: tree_info has %d entries for %d trees", len(jt.TreeInfo), n)
	}
	if weights != nil && len(weights) != n {
		return fmt.Errorf("xgb: dart weight_drop has %d entries for %d trees", len(weights), n)
	}
	// Boosting rounds: iteration_indptr (XGBoost ≥ 2.1) or, before it,
	// num_parallel_tree × outputs trees per round.
	indptr := jt.IterationIndptr
	if len(indptr) == 0 {
		per := 1
		if s := jt.Param.NumParallelTree; s != "" {
			var err error
			if per, err = strconv.Atoi(s); err != nil || per < 1 {
				return fmt.Errorf("xgb: gbtree_model_param.num_parallel_tree %q is not a positive count", s)
			}
		}
		per *= numTarget
		if n%per != 0 {
			return fmt.Errorf("xgb: %d trees do not divide into rounds of %d", n, per)
		}
		for i := 0; i <= n; i += per {
			indptr = append(indptr, i)
		}
	}
	if indptr[0] != 0 || indptr[len(indptr)-1] != n {
		return fmt.Errorf("xgb: iteration_indptr %v does not cover %d trees", indptr, n)
	}
	for i := 1; i < len(indptr); i++ {
		if indptr[i] < indptr[i-1] {
			return fmt.Errorf("xgb: iteration_indptr is not increasing at %d", i)
		}
	}
	m.iterIndptr = indptr

	m.roots = make([]int32, n)
	m.depths = make([]int32, n)
	m.groups = make([]int32, n)
	for i := range jt.Trees {
		g := jt.TreeInfo[i]
		if g < 0 || g >= numTarget {
			return fmt.Errorf("xgb: tree %d: tree_info %d is not an output in [0,%d)", i, g, numTarget)
		}
		m.groups[i] = int32(g)
		w := float32(1)
		if weights != nil {
			w = weights[i]
		}
		m.roots[i] = int32(len(m.nodes))
		depth, err := m.addTree(&jt.Trees[i], w)
		if err != nil {
			return fmt.Errorf("xgb: tree %d: %w", i, err)
		}
		m.depths[i] = int32(depth)
	}
	m.nodes = m.nodes[:len(m.nodes):len(m.nodes)]
	return nil
}

// addTree validates one tree and appends its reachable nodes to m.nodes in
// breadth-first order: the top levels, visited by every row, share cache
// lines, and a node's children are adjacent (right = left+1). Leaves loop to
// themselves, which lets traversal run a fixed number of steps (the tree's
// depth) without testing for leaves.
func (m *Model) addTree(t *jsonTree, weight float32) (int, error) {
	n := len(t.LeftChildren)
	if n == 0 {
		return 0, errors.New("no nodes")
	}
	if nn, err := strconv.Atoi(t.TreeParam.NumNodes); t.TreeParam.NumNodes != "" && (err != nil || nn != n) {
		return 0, fmt.Errorf("tree_param.num_nodes %q, but %d nodes are stored", t.TreeParam.NumNodes, n)
	}
	if s := t.TreeParam.SizeLeafVector; s != "" && s != "0" && s != "1" {
		return 0, fmt.Errorf("vector-leaf trees (size_leaf_vector %s, multi_strategy multi_output_tree) are not supported", s)
	}
	for name, l := range map[string]int{
		"right_children": len(t.RightChildren), "split_indices": len(t.SplitIndices),
		"split_conditions": len(t.SplitConditions), "default_left": len(t.DefaultLeft),
	} {
		if l != n {
			return 0, fmt.Errorf("%s has %d entries, left_children %d", name, l, n)
		}
	}
	if len(t.SplitType) != 0 && len(t.SplitType) != n {
		return 0, fmt.Errorf("split_type has %d entries, left_children %d", len(t.SplitType), n)
	}
	if len(t.Categories) != 0 || len(t.CategoriesNodes) != 0 {
		node := -1
		if len(t.CategoriesNodes) > 0 {
			node = t.CategoriesNodes[0]
		}
		return 0, fmt.Errorf("node %d: categorical splits are not supported (retrain without enable_categorical, or one-hot encode)", node)
	}

	// Breadth-first walk from the root: checks child indices, that every node
	// has one parent (no cycles or shared subtrees), and finds the depth.
	newID := make([]int32, n)
	for i := range newID {
		newID[i] = -1
	}
	order := make([]int32, 0, n)
	depth := make([]int32, n)
	order = append(order, 0)
	newID[0] = 0
	maxDepth := int32(0)
	for q := 0; q < len(order); q++ {
		i := order[q]
		l, r := t.LeftChildren[i], t.RightChildren[i]
		if l == -1 && r == -1 {
			continue
		}
		if len(t.SplitType) != 0 && t.SplitType[i] != 0 {
			return 0, fmt.Errorf("node %d: categorical split (split_type %d) is not supported", i, t.SplitType[i])
		}
		for _, c := range [2]int32{l, r} {
			if c < 0 || int(c) >= n {
				return 0, fmt.Errorf("node %d: child index %d is out of range [0,%d)", i, c, n)
			}
			if newID[c] != -1 || c == 0 {
				return 0, fmt.Errorf("node %d: child %d is reached twice (cycle or shared node)", i, c)
			}
			newID[c] = int32(len(order))
			depth[c] = depth[i] + 1
			if depth[c] > maxDepth {
				maxDepth = depth[c]
			}
			order = append(order, c)
		}
		f := t.SplitIndices[i]
		if f < 0 || f >= int64(m.numFeature) {
			return 0, fmt.Errorf("node %d: split feature %d is out of range [0,%d)", i, f, m.numFeature)
		}
		c := t.SplitConditions[i]
		if math.IsNaN(float64(c)) || math.IsInf(float64(c), 0) {
			return 0, fmt.Errorf("node %d: split condition %v is not finite", i, c)
		}
	}
	base := int32(len(m.nodes))
	for _, i := range order {
		self := base + newID[i]
		l, r := t.LeftChildren[i], t.RightChildren[i]
		if l == -1 {
			m.nodes = append(m.nodes, node{feat: uint32(2 * m.numFeature), thr: t.SplitConditions[i] * weight, left: self})
			continue
		}
		// Each feature has two float32 slots in the scoring buffer: 2f holds
		// the value with NaN replaced by -Inf (so it goes left), 2f+1 with
		// NaN replaced by +Inf (so it goes right). Picking the slot by the
		// default direction makes missing values a plain comparison.
		feat := uint32(2 * t.SplitIndices[i])
		if !t.DefaultLeft[i] {
			feat++
		}
		if newID[r] != newID[l]+1 {
			panic("xgb: breadth-first numbering did not place siblings together")
		}
		m.nodes = append(m.nodes, node{feat: feat, thr: t.SplitConditions[i], left: base + newID[l]})
	}
	return int(maxDepth), nil
}
