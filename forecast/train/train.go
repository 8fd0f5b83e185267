package train

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ebbflow/ebbflow/forecast/features"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/internal/history"
)

// Options configure one training run.
type Options struct {
	// Python is the interpreter with xgboost, numpy and pyarrow; empty:
	// $EBBFLOW_PYTHON, else .venv/bin/python.
	Python string
	// Script is forecast/python/train.py; empty: found from the working
	// directory upwards.
	Script string
	// Out is the model store directory on Store (nil: the local
	// filesystem): promoted models replace <Out>/<signal>.model.json and
	// are archived under <Out>/versions/<version>/; rejected ones are
	// written aside to <Out>/rejected/<version>/ with their report.
	Out   string
	Store history.FS
	// Work is a local scratch directory for the matrix (empty: a
	// temporary directory, removed afterwards).
	Work string
	// Signals to train (each one model for every horizon).
	Signals []string
	// Features names the feature set (empty: DefaultFeatures).
	Features string
	// Horizons is the number of steps ahead (5 = 1..5).
	Horizons int
	// FromStep and ToStep bound the origins used (inclusive).
	FromStep, ToStep int64
	// ValFrac and TestFrac are the shares of the origins, newest last,
	// kept for validation (early stopping, candidate choice) and test
	// (reported and gated on, never used to choose).
	ValFrac, TestFrac float64
	// Candidates are train.py's candidate configurations; validation picks
	// one (empty: train.py's default).
	Candidates []string
	// Gate is the promotion rule (zero: model.DefaultGate()).
	Gate model.Gate
	// Rounds, MaxDepth and Eta are XGBoost's n_estimators, max_depth and
	// learning_rate (0: train.py's defaults).
	Rounds, MaxDepth int
	Eta              float64
	// Threads is XGBoost's nthread (0: 1).
	Threads int
	// Version labels the models (e.g. a date); ModelPrefix starts their id.
	Version, ModelPrefix string
	// Progress receives the trainer's progress lines (nil: discarded).
	Progress io.Writer
}

// Meta is what train.py reports for one model, with the gate's verdict
// (also <signal>.meta.json beside the model).
type Meta struct {
	ModelID     string          `json:"model_id"`
	Version     string          `json:"version"`
	Signal      string          `json:"signal"`
	Spec        features.Spec   `json:"feature_spec"`
	Rounds      int             `json:"rounds"`
	Candidate   string          `json:"candidate"`
	Params      map[string]any  `json:"params"`
	Candidates  []any           `json:"candidates"`
	TrainFromMs int64           `json:"train_from_ms"`
	TrainToMs   int64           `json:"train_to_ms"`
	ValFromMs   int64           `json:"validation_from_ms"`
	ValToMs     int64           `json:"validation_to_ms"`
	TestFromMs  int64           `json:"test_from_ms"`
	TestToMs    int64           `json:"test_to_ms"`
	Validation  []HorizonMetric `json:"validation"`
	// Test are the figures on the test span, with the plain lag XGBoost.
	Test          []HorizonMetric `json:"test"`
	PlainBaseline string          `json:"plain_baseline"`
	// Gate is the promotion verdict.
	Gate model.Verdict `json:"gate"`
	// ModelPath is where the model was written (promoted: the served
	// file; rejected: under rejected/).
	ModelPath string `json:"model_path,omitempty"`
}

// HorizonMetric is one horizon's accuracy with the baselines.
type HorizonMetric = model.HorizonMetric

// PythonPath resolves the interpreter: explicit, $EBBFLOW_PYTHON, then
// .venv/bin/python from the working directory upwards.
func PythonPath(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if p := os.Getenv("EBBFLOW_PYTHON"); p != "" {
		return p, nil
	}
	if p, err := findUp(filepath.Join(".venv", "bin", "python")); err == nil {
		return p, nil
	}
	return "", errors.New("train: no Python with XGBoost: set EBBFLOW_PYTHON or create .venv (deploy/dev/venv.sh)")
}

// ScriptPath finds forecast/python/train.py from the working directory up.
func ScriptPath(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	p, err := findUp(filepath.Join("forecast", "python", "train.py"))
	if err != nil {
		return "", errors.New("train: forecast/python/train.py not found above the working directory: pass --script")
	}
	return p, nil
}

func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// Train fits one model per signal of o.Signals on h: it builds the matrix
// with the feature builder, writes it as Parquet, runs train.py on it,
// judges the model with the promotion gate on its test figures, and
// publishes it to the model store (promoted) or beside it (rejected).
func Train(ctx context.Context, h *features.History, o Options) ([]Meta, error) {
	py, err := PythonPath(o.Python)
	if err != nil {
		return nil, err
	}
	script, err := ScriptPath(o.Script)
	if err != nil {
		return nil, err
	}
	if o.Out == "" {
		return nil, errors.New("train: no model store directory (Options.Out)")
	}
	if o.Gate == (model.Gate{}) {
		o.Gate = model.DefaultGate()
	}
	if err := o.Gate.Validate(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	store := o.Store
	if store == nil {
		store = history.LocalFS{}
	}
	work := o.Work
	if work == "" {
		if work, err = os.MkdirTemp("", "ebbflow-train-"); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	if o.Horizons == 0 {
		o.Horizons = 5
	}
	if o.ValFrac == 0 {
		o.ValFrac = 0.15
	}
	if o.TestFrac == 0 {
		o.TestFrac = 0.15
	}
	if o.Threads == 0 {
		o.Threads = 1
	}
	prefix := o.ModelPrefix
	if prefix == "" {
		prefix = "ebbflow"
	}
	version := o.Version
	if version == "" {
		version = "dev"
	}
	var metas []Meta
	for _, sig := range o.Signals {
		if !anyHas(h, sig) {
			fmt.Fprintf(progress, "train: %s: no history of this signal; skipped\n", sig)
			continue
		}
		var others []string
		for _, s := range []string{"qps", "cpu", "gpu_util"} {
			if s != sig && anyHas(h, s) {
				others = append(others, s)
			}
		}
		spec, err := SpecFor(cmp.Or(o.Features, DefaultFeatures), sig, h.StepS, o.Horizons, others)
		if err != nil {
			return metas, err
		}
		gate := o.Gate.Horizons(h.StepS, o.Horizons)
		fmt.Fprintf(progress, "train: %s: building features (%d entities, %d features)\n", sig, len(h.Entities), spec.NumFeatures())
		m, err := BuildMatrix(h, spec, o.FromStep, o.ToStep)
		if err != nil {
			return metas, err
		}
		matPath := filepath.Join(work, sig+".matrix.parquet")
		if err := writeMatrixFile(matPath, m); err != nil {
			return metas, fmt.Errorf("train: %w", err)
		}
		specPath := filepath.Join(work, sig+".spec.json")
		if err := os.WriteFile(specPath, []byte(spec.JSON()), 0o644); err != nil {
			return metas, fmt.Errorf("train: %w", err)
		}
		fmt.Fprintf(progress, "train: %s: %d rows written to %s; fitting XGBoost\n", sig, m.Rows(), matPath)
		args := []string{script, "--matrix", matPath, "--spec", specPath, "--out", filepath.Join(work, sig),
			"--model-id", prefix + "-" + sig, "--version", version,
			"--val-frac", strconv.FormatFloat(o.ValFrac, 'f', -1, 64), "--test-frac", strconv.FormatFloat(o.TestFrac, 'f', -1, 64),
			"--gate-horizons", joinInts(gate), "--threads", strconv.Itoa(o.Threads)}
		if len(o.Candidates) > 0 {
			args = append(args, "--candidates", strings.Join(o.Candidates, ","))
		}
		if o.Rounds > 0 {
			args = append(args, "--rounds", strconv.Itoa(o.Rounds))
		}
		if o.MaxDepth > 0 {
			args = append(args, "--max-depth", strconv.Itoa(o.MaxDepth))
		}
		if o.Eta > 0 {
			args = append(args, "--eta", strconv.FormatFloat(o.Eta, 'f', -1, 64))
		}
		meta, err := runPython(ctx, py, args, progress)
		if err != nil {
			return metas, fmt.Errorf("train: signal %s: %w", sig, err)
		}
		meta.Gate = o.Gate.Judge(h.StepS, o.Horizons, meta.Test)
		meta.Gate.JudgedAt = time.Now().UTC().Format(time.RFC3339)
		fmt.Fprintf(progress, "train: %s: gate: %s (%s): %s\n", sig, meta.Gate.Verdict, meta.Gate.Reason, meta.Gate.Detail)
		if err := Publish(store, o.Out, &meta, filepath.Join(work, sig+".model.json")); err != nil {
			return metas, err
		}
		metas = append(metas, meta)
	}
	return metas, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// Publish writes a judged model into the model store dir on fsys. The
// verdict goes into the model (attribute ebbflow_gate) and its meta. A
// promoted model replaces <dir>/<signal>.model.json atomically (written
// to a temporary name, then renamed; a bundled <signal>.model.json.gz is
// removed so the new model is the one served) and is archived under
// <dir>/versions/<version>/. A rejected model is written aside to
// <dir>/rejected/<version>/ with its meta (its report); the served model,
// or the baseline, stays.
func Publish(fsys history.FS, dir string, meta *Meta, localModel string) error {
	raw, err := os.ReadFile(localModel)
	if err != nil {
		return fmt.Errorf("train: publish %s: %w", meta.Signal, err)
	}
	verdict, err := json.Marshal(meta.Gate)
	if err != nil {
		return fmt.Errorf("train: publish %s: %w", meta.Signal, err)
	}
	raw, err = model.SetAttributes(raw, map[string]string{model.AttrGate: string(verdict)})
	if err != nil {
		return fmt.Errorf("train: publish %s: %w", meta.Signal, err)
	}
	name := meta.Signal + model.Suffix
	metaName := meta.Signal + ".meta.json"
	var targets []string
	if meta.Gate.Promoted() {
		targets = []string{dir, path.Join(dir, "versions", meta.Version)}
	} else {
		targets = []string{path.Join(dir, "rejected", meta.Version)}
	}
	meta.ModelPath = path.Join(targets[0], name)
	mb, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("train: publish %s: meta: %w", meta.Signal, err)
	}
	for _, d := range targets {
		if err := fsys.MkdirAll(d); err != nil {
			return fmt.Errorf("train: publish %s: %w", d, err)
		}
		// The meta first: a reader that sees the model sees its report.
		if err := writeAtomic(fsys, path.Join(d, metaName), append(mb, '\n')); err != nil {
			return err
		}
		if err := writeAtomic(fsys, path.Join(d, name), raw); err != nil {
			return err
		}
	}
	if meta.Gate.Promoted() {
		gz := path.Join(dir, meta.Signal+model.SuffixGz)
		if _, err := fsys.Stat(gz); err == nil {
			if err := fsys.Remove(gz); err != nil {
				return fmt.Errorf("train: publish: remove the older %s: %w", gz, err)
			}
		}
	}
	return nil
}

// writeAtomic writes a file under a temporary name (not matching the
// registry's suffixes) and renames it into place.
func writeAtomic(fsys history.FS, name string, b []byte) error {
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".tmp")
	w, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("train: write %s: %w", name, err)
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return fmt.Errorf("train: write %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("train: write %s: %w", name, err)
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return fmt.Errorf("train: rename %s: %w", name, err)
	}
	return nil
}

func anyHas(h *features.History, signal string) bool {
	for _, e := range h.Entities {
		if e[signal] != nil {
			return true
		}
	}
	return false
}

func runPython(ctx context.Context, py string, args []string, progress io.Writer) (Meta, error) {
	cmd := exec.CommandContext(ctx, py, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return Meta{}, err
	}
	if err := cmd.Start(); err != nil {
		return Meta{}, fmt.Errorf("start %s: %w", py, err)
	}
	var tail []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(progress, sc.Text())
			tail = append(tail, sc.Text())
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
	}()
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		return Meta{}, fmt.Errorf("%s %s: %w: %s", py, filepath.Base(args[0]), err, strings.Join(tail, "\n"))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var meta Meta
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &meta); err != nil {
		return Meta{}, fmt.Errorf("train.py printed no metadata: %w", err)
	}
	return meta, nil
}
