//go:build integration

package xgb

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestLiveXGBoostParity re-proves parity against the real XGBoost on every
// run: it trains fresh models with a seed different from the committed
// goldens (forecast/python/make_golden.py --quick) using the Python in
// EBBFLOW_TEST_PYTHON (make test sets it to the project's .venv), then
// checks every prediction entry point against XGBoost's own predictions.
func TestLiveXGBoostParity(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: point it at a Python with deploy/dev/requirements.txt installed (make test uses .venv/bin/python)")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seed := "1" + time.Now().Format("0102150405") // fresh models on every run
	cmd := exec.CommandContext(ctx, py, "../python/make_golden.py", "--out", dir, "--seed", seed, "--quick")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make_golden.py --seed %s failed: %v\n%s", seed, err, out)
	}
	t.Logf("make_golden.py --seed %s: %s", seed, out)
	checkGolden(t, dir)
}
