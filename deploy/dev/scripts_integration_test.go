//go:build integration

package dev_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestXGBoostLibFound: xgboost-lib.sh finds the venv's libxgboost.so
// (that of EBBFLOW_TEST_PYTHON) and refuses a Python without
// xgboost with a message saying so.
func TestXGBoostLibFound(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: it must name the venv python with xgboost (make test sets it)")
	}
	out, err := exec.Command("bash", "xgboost-lib.sh", py).CombinedOutput()
	if err != nil {
		t.Fatalf("xgboost-lib.sh %s: %v\n%s", py, err, out)
	}
	lib := strings.TrimSpace(string(out))
	if !strings.HasPrefix(filepath.Base(lib), "libxgboost") {
		t.Errorf("xgboost-lib.sh printed %q", lib)
	}
	if _, err := os.Stat(lib); err != nil {
		t.Error(err)
	}
	bad := filepath.Join(t.TempDir(), "python")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'No module named xgboost' >&2; exit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("bash", "xgboost-lib.sh", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot locate libxgboost") {
		t.Errorf("xgboost-lib.sh with a python without xgboost: err %v, output %q", err, out)
	}
}
