package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/ebbflow/ebbflow/forecast/features"
)

// Options configure one training run.
type Options struct {
	// Python is the interpreter with xgboost, numpy and pyarrow; empty:
	// $EBBFLOW_PYTHON, else .venv/bin/python.
	Python string
	// Script is forecast/python/train.py; empty: found from the working
	// directory upwards.
	Script string
	// Out is the directory models are written to (<signal>.model.json and
	// <signal>.meta.json).
	Out string
	// Signals to train (each one model for every horizon).
	Signals []string
	// Horizons is the number of steps ahead (5 = 1..5).
	Horizons int
	// FromStep and ToStep bound the origins used (inclusive).
	FromStep, ToStep int64
	// ValFrac is the share of the latest origins kept for validation.
	ValFrac float64
	// Rounds, MaxDepth and Eta are XGBoost's n_estimators, max_depth and
	// learning_rate.
	Rounds, MaxDepth int
	Eta              float64
	// Version labels the models (e.g. a date); ModelPrefix starts their id.
	Version, ModelPrefix string
	// Progress receives the trainer's progress lines (nil: discarded).
	Progress io.Writer
}

// Meta is what train.py reports for one model (also <signal>.meta.json).
type Meta struct {
	ModelID     string          `json:"model_id"`
	Version     string          `json:"version"`
	Signal      string          `json:"signal"`
	Spec        features.Spec   `json:"feature_spec"`
	Rounds      int             `json:"rounds"`
	TrainFromMs int64           `json:"train_from_ms"`
	TrainToMs   int64           `json:"train_to_ms"`
	ValFromMs   int64           `json:"validation_from_ms"`
	ValToMs     int64           `json:"validation_to_ms"`
	Validation  []HorizonMetric `json:"validation"`
	// ModelPath is where the model was written (not from Python).
	ModelPath string `json:"-"`
}

// HorizonMetric is one horizon's accuracy with both baselines on the same
// rows (those where the actual and the seasonal-naive value exist).
type HorizonMetric struct {
	Horizon       int     `json:"horizon"`
	N             int     `json:"n"`
	MAE           float64 `json:"mae"`
	SMAPE         float64 `json:"smape"`
	MAELast       float64 `json:"mae_last"`
	SMAPELast     float64 `json:"smape_last"`
	MAESeasonal   float64 `json:"mae_seasonal"`
	SMAPESeasonal float64 `json:"smape_seasonal"`
	RatioLast     float64 `json:"ratio_last"`
	RatioSeasonal float64 `json:"ratio_seasonal"`
}

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
// with the feature builder, writes it as Parquet next to the models, and
// runs train.py on it.
func Train(ctx context.Context, h *features.History, o Options) ([]Meta, error) {
	py, err := PythonPath(o.Python)
	if err != nil {
		return nil, err
	}
	script, err := ScriptPath(o.Script)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
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
		o.ValFrac = 0.2
	}
	var metas []Meta
	for _, sig := range o.Signals {
		var others []string
		for _, s := range []string{"qps", "cpu", "gpu_util"} {
			if s != sig && anyHas(h, s) {
				others = append(others, s)
			}
		}
		spec := features.DefaultSpec(sig, h.StepS, o.Horizons, others)
		fmt.Fprintf(progress, "train: %s: building features (%d entities, %d features)\n", sig, len(h.Entities), spec.NumFeatures())
		m, err := BuildMatrix(h, spec, o.FromStep, o.ToStep)
		if err != nil {
			return metas, err
		}
		matPath := filepath.Join(o.Out, sig+".matrix.parquet")
		f, err := os.Create(matPath)
		if err != nil {
			return metas, fmt.Errorf("train: %w", err)
		}
		if err := WriteParquet(f, m); err != nil {
			f.Close()
			return metas, fmt.Errorf("train: %s: %w", matPath, err)
		}
		if err := f.Close(); err != nil {
			return metas, fmt.Errorf("train: %s: %w", matPath, err)
		}
		specPath := filepath.Join(o.Out, sig+".spec.json")
		if err := os.WriteFile(specPath, []byte(spec.JSON()), 0o644); err != nil {
			return metas, fmt.Errorf("train: %w", err)
		}
		fmt.Fprintf(progress, "train: %s: %d rows written to %s; fitting XGBoost\n", sig, m.Rows(), matPath)
		prefix := o.ModelPrefix
		if prefix == "" {
			prefix = "ebbflow"
		}
		version := o.Version
		if version == "" {
			version = "dev"
		}
		args := []string{script, "--matrix", matPath, "--spec", specPath, "--out", filepath.Join(o.Out, sig),
			"--model-id", prefix + "-" + sig, "--version", version, "--val-frac", strconv.FormatFloat(o.ValFrac, 'f', -1, 64),
			"--threads", strconv.Itoa(runtime.NumCPU())}
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
		_ = os.Remove(specPath)
		meta.ModelPath = filepath.Join(o.Out, sig+".model.json")
		metas = append(metas, meta)
	}
	return metas, nil
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
