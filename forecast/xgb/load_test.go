package xgb

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// smallModel is a real XGBoost model (depth 2, so tree 0 is nodes 0..6 with
// leaves 3..6) that the error tests break in one place each.
const smallModel = "shallow_squarederror_base.json"

func loadRaw(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, smallModel))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// obj walks a path of object keys in a decoded JSON document.
func obj(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		m = m[k].(map[string]any)
	}
	return m
}

func learner(m map[string]any) map[string]any { return obj(m, "learner") }

func tree0(m map[string]any) map[string]any {
	trees := obj(m, "learner", "gradient_booster", "model")["trees"].([]any)
	return trees[0].(map[string]any)
}

func TestLoadErrors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(goldenDir, smallModel))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		bytes []byte               // used as is when set
		edit  func(map[string]any) // otherwise applied to the small model
		want  []string             // substrings of the error
	}{
		{name: "empty", bytes: []byte{}, want: []string{"not valid XGBoost JSON"}},
		{name: "truncated", bytes: raw[:len(raw)/2], want: []string{"not valid XGBoost JSON", "unexpected end"}},
		{name: "ubjson", bytes: []byte("{L\x00\x00\x00\x00\x00\x00\x00\x07learner{"), want: []string{"UBJSON"}},
		{name: "not a model", bytes: []byte(`{"hello": 1}`), want: []string{`no "learner"`}},
		{name: "categorical split_type", edit: func(m map[string]any) {
			tree0(m)["split_type"].([]any)[1] = 1
		}, want: []string{"tree 0", "node 1", "categorical"}},
		{name: "categorical categories", edit: func(m map[string]any) {
			t := tree0(m)
			t["categories"] = []any{0, 2}
			t["categories_nodes"] = []any{2}
			t["categories_segments"] = []any{0}
			t["categories_sizes"] = []any{2}
		}, want: []string{"tree 0", "node 2", "categorical"}},
		{name: "unknown objective", edit: func(m map[string]any) {
			learner(m)["objective"] = map[string]any{"name": "rank:pairwise"}
		}, want: []string{`objective "rank:pairwise" is not supported`, "reg:squarederror"}},
		{name: "multi-class", edit: func(m map[string]any) {
			learner(m)["objective"] = map[string]any{"name": "multi:softprob"}
		}, want: []string{`"multi:softprob"`}},
		{name: "num_class", edit: func(m map[string]any) {
			obj(m, "learner", "learner_model_param")["num_class"] = "3"
		}, want: []string{"multi-class", "num_class 3"}},
		{name: "gblinear", edit: func(m map[string]any) {
			learner(m)["gradient_booster"] = map[string]any{"name": "gblinear", "model": map[string]any{"weights": []any{0.1, 0.2}}}
		}, want: []string{"gblinear boosters are not supported"}},
		{name: "unknown booster", edit: func(m map[string]any) {
			obj(m, "learner", "gradient_booster")["name"] = "gbforest"
		}, want: []string{`"gbforest" is not supported`}},
		{name: "dart without gbtree", edit: func(m map[string]any) {
			learner(m)["gradient_booster"] = map[string]any{"name": "dart", "weight_drop": []any{}}
		}, want: []string{`dart booster has no "gbtree"`}},
		{name: "dart weights", edit: func(m map[string]any) {
			gb := obj(m, "learner", "gradient_booster")
			learner(m)["gradient_booster"] = map[string]any{"name": "dart", "gbtree": gb, "weight_drop": []any{1.0}}
		}, want: []string{"weight_drop has 1 entries"}},
		{name: "no learner_model_param", edit: func(m map[string]any) {
			delete(learner(m), "learner_model_param")
		}, want: []string{"learner_model_param"}},
		{name: "no base_score", edit: func(m map[string]any) {
			delete(obj(m, "learner", "learner_model_param"), "base_score")
		}, want: []string{"base_score"}},
		{name: "bad base_score", edit: func(m map[string]any) {
			obj(m, "learner", "learner_model_param")["base_score"] = "[abc]"
		}, want: []string{`base_score "[abc]"`}},
		{name: "logistic base_score out of range", edit: func(m map[string]any) {
			learner(m)["objective"] = map[string]any{"name": "binary:logistic"}
			obj(m, "learner", "learner_model_param")["base_score"] = "[1.5E0]"
		}, want: []string{"base_score 1.5", "(0,1)"}},
		{name: "no objective", edit: func(m map[string]any) {
			delete(learner(m), "objective")
		}, want: []string{"objective.name is missing"}},
		{name: "no gradient_booster", edit: func(m map[string]any) {
			delete(learner(m), "gradient_booster")
		}, want: []string{"gradient_booster is missing"}},
		{name: "no model", edit: func(m map[string]any) {
			delete(obj(m, "learner", "gradient_booster"), "model")
		}, want: []string{"gradient_booster.model is missing"}},
		{name: "no trees", edit: func(m map[string]any) {
			delete(obj(m, "learner", "gradient_booster", "model"), "trees")
		}, want: []string{"num_trees"}},
		{name: "tree_info", edit: func(m map[string]any) {
			obj(m, "learner", "gradient_booster", "model")["tree_info"] = []any{0}
		}, want: []string{"tree_info has 1 entries"}},
		{name: "tree_info output", edit: func(m map[string]any) {
			obj(m, "learner", "gradient_booster", "model")["tree_info"].([]any)[2] = 1
		}, want: []string{"tree 2", "tree_info 1"}},
		{name: "child out of range", edit: func(m map[string]any) {
			tree0(m)["left_children"].([]any)[1] = 99
		}, want: []string{"tree 0", "node 1", "child index 99 is out of range [0,7)"}},
		{name: "negative child", edit: func(m map[string]any) {
			tree0(m)["right_children"].([]any)[2] = -3
		}, want: []string{"tree 0", "node 2", "child index -3"}},
		{name: "cycle", edit: func(m map[string]any) {
			tree0(m)["right_children"].([]any)[2] = 1
		}, want: []string{"tree 0", "node 2", "reached twice"}},
		{name: "feature out of range", edit: func(m map[string]any) {
			tree0(m)["split_indices"].([]any)[1] = 8
		}, want: []string{"tree 0", "node 1", "split feature 8 is out of range [0,8)"}},
		{name: "short array", edit: func(m map[string]any) {
			t := tree0(m)
			t["split_conditions"] = t["split_conditions"].([]any)[:3]
		}, want: []string{"tree 0", "split_conditions has 3 entries"}},
		{name: "missing array", edit: func(m map[string]any) {
			delete(tree0(m), "default_left")
		}, want: []string{"tree 0", "default_left has 0 entries"}},
		{name: "vector leaf", edit: func(m map[string]any) {
			obj(tree0(m), "tree_param")["size_leaf_vector"] = "2"
		}, want: []string{"tree 0", "vector-leaf"}},
		{name: "bad default_left", edit: func(m map[string]any) {
			tree0(m)["default_left"].([]any)[0] = 7
		}, want: []string{"want 0, 1, true or false"}},
		{name: "feature names", edit: func(m map[string]any) {
			learner(m)["feature_names"] = []any{"a", "b"}
		}, want: []string{"2 feature names for 8 features"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.bytes
			if tt.edit != nil {
				m := loadRaw(t)
				tt.edit(m)
				var err error
				if in, err = json.Marshal(m); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(bytes.NewReader(in))
			if err == nil {
				t.Fatalf("Load succeeded, want an error containing %q", tt.want)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "xgb: ") {
				t.Errorf("error %q does not start with xgb:", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

// TestLoadUnchanged makes sure the re-encoding in TestLoadErrors is not
// itself what breaks the model.
func TestLoadUnchanged(t *testing.T) {
	b, err := json.Marshal(loadRaw(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := LoadFile(filepath.Join(t.TempDir(), "nope.json")); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "bad.json.gz")
	os.WriteFile(p, []byte("not gzip"), 0o644)
	if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), "bad.json.gz") {
		t.Errorf("bad gzip: %v", err)
	}
}

func mustLoad(t testing.TB, name string) *Model {
	t.Helper()
	m, err := LoadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIterations(t *testing.T) {
	m := mustLoad(t, "forest_squarederror.json")
	if m.NumIterations() != 5 || m.NumTrees() != 20 {
		t.Fatalf("got %d rounds, %d trees; want 5, 20", m.NumIterations(), m.NumTrees())
	}
	s, err := m.Iterations(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.NumTrees() != 8 {
		t.Errorf("Iterations(1,3) has %d trees, want 8 (4 parallel trees per round)", s.NumTrees())
	}
	for _, r := range [][2]int{{-1, 2}, {3, 2}, {0, 6}, {2, 2}} {
		if _, err := m.Iterations(r[0], r[1]); err == nil {
			t.Errorf("Iterations(%d,%d) succeeded", r[0], r[1])
		}
	}
	if _, err := s.Iterations(0, 1); err == nil {
		t.Error("narrowing a narrowed model succeeded")
	}
	if _, ok := m.BestIteration(); ok {
		t.Error("BestIteration reported for a model trained without early stopping")
	}
}

func TestPanics(t *testing.T) {
	m := mustLoad(t, smallModel)
	multi := mustLoad(t, "multi_target.json")
	row := make([]float64, m.NumFeatures())
	for name, f := range map[string]func(){
		"short row":         func() { m.Predict(row[:3]) },
		"long row":          func() { m.Predict(append(row, 1)) },
		"multi via Predict": func() { multi.Predict(row) },
		"multi out":         func() { multi.PredictMulti(row, make([]float64, 1)) },
		"matrix size":       func() { m.PredictMatrix(row, 2, 8, make([]float64, 2)) },
		"matrix cols":       func() { m.PredictMatrix(row, 1, 7, make([]float64, 1)) },
		"matrix out":        func() { m.PredictMatrix(row, 1, 8, make([]float64, 2)) },
		"batch row":         func() { m.PredictBatch([][]float64{row[:2]}, make([]float64, 1)) },
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil {
					t.Errorf("%s: no panic", name)
				} else if !strings.HasPrefix(r.(string), "xgb: ") {
					t.Errorf("%s: panic %q does not say where it comes from", name, r)
				}
			}()
			f()
		}()
	}
}

func TestPredictAllocs(t *testing.T) {
	m := mustLoad(t, "deep_squarederror.json.gz")
	multi := mustLoad(t, "multi_target.json")
	row := []float64{1, math.NaN(), 3, 4, 5, 6, 7, 8}
	out := make([]float64, 2)
	if n := testing.AllocsPerRun(100, func() { m.Predict(row) }); n != 0 {
		t.Errorf("Predict allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { multi.PredictMulti(row, out) }); n != 0 {
		t.Errorf("PredictMulti allocates %v times per call", n)
	}
}

// TestConcurrent scores from many goroutines at once; run with -race.
func TestConcurrent(t *testing.T) {
	m := mustLoad(t, "deep_squarederror.json.gz")
	const nrows = 300
	data := make([]float64, nrows*m.NumFeatures())
	for i := range data {
		data[i] = math.Sin(float64(i)) * 3
		if i%11 == 0 {
			data[i] = math.NaN()
		}
	}
	want := make([]float64, nrows)
	m.PredictMatrix(data, nrows, m.NumFeatures(), want)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			got := make([]float64, nrows)
			if w%2 == 0 {
				m.PredictMatrixParallel(data, nrows, m.NumFeatures(), got, 3)
			} else {
				for r := range nrows {
					got[r] = m.Predict(data[r*m.NumFeatures() : (r+1)*m.NumFeatures()])
				}
			}
			for r := range got {
				if got[r] != want[r] {
					t.Errorf("goroutine %d row %d: %v, want %v", w, r, got[r], want[r])
					return
				}
			}
		})
	}
	wg.Wait()
}
