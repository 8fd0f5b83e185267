// Package dev_test checks the dev scripts' failure paths: the test runner's
// summary and exit status, and the bounded downloads' messages.
package dev_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGoTest prints what a failing `go test` prints and exits 1.
const fakeGoTest = `echo "=== RUN   TestGood"; echo "--- PASS: TestGood (0.00s)"; echo "ok  	example/good	0.1s";
echo "=== RUN   TestBad"; echo "    bad_test.go:9: boom"; echo "--- FAIL: TestBad (0.00s)"; echo "FAIL"; echo "FAIL	example/bad	0.1s"; exit 1`

// runLikeTestAll runs run-tests.sh the way test-all.sh does: from a script
// under set -euo pipefail, status kept with || status=$?, then lines after
// it (the stamp) and exit "$status".
func runLikeTestAll(t *testing.T, cmd string) (string, int) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "test.log")
	script := `set -euo pipefail
status=0
bash run-tests.sh "$1" bash -c "$2" || status=$?
echo "after: status $status"
exit "$status"`
	out, err := exec.Command("bash", "-c", script, "test-all", log, cmd).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	kept, rerr := os.ReadFile(log)
	if rerr != nil {
		t.Fatalf("run-tests.sh kept no log: %v", rerr)
	}
	if !strings.Contains(string(kept), "example/good") {
		t.Errorf("log %s lacks the command's output: %q", log, kept)
	}
	return string(out), code
}

// TestRunTestsPrintsFailureSummary: a failing test run still prints the
// summary with its FAIL lines, the lines after it in test-all.sh run, and
// the exit status is the test command's.
func TestRunTestsPrintsFailureSummary(t *testing.T) {
	out, code := runLikeTestAll(t, fakeGoTest)
	if code != 1 {
		t.Errorf("exit status %d, want the test command's 1\n%s", code, out)
	}
	sum := strings.Index(out, "[run-tests] summary")
	if sum < 0 {
		t.Fatalf("no summary printed:\n%s", out)
	}
	tail := out[sum:]
	for _, want := range []string{"--- FAIL: TestBad", "FAIL\texample/bad", "ok  \texample/good", "[run-tests] failed:", "after: status 1"} {
		if !strings.Contains(tail, want) {
			t.Errorf("summary lacks %q:\n%s", want, tail)
		}
	}
	if strings.Contains(tail, "--- PASS") {
		t.Errorf("summary lists passing tests:\n%s", tail)
	}
}

func TestRunTestsPassingRun(t *testing.T) {
	out, code := runLikeTestAll(t, `echo "ok  	example/good	0.1s"`)
	if code != 0 {
		t.Fatalf("exit status %d, want 0\n%s", code, out)
	}
	if strings.Contains(out, "[run-tests] failed:") || !strings.Contains(out, "after: status 0") {
		t.Errorf("passing run output:\n%s", out)
	}
}

// TestTestAllUsesRunTests: test-all.sh runs go test through run-tests.sh
// with its status kept, not a bare pipeline that set -e would end.
func TestTestAllUsesRunTests(t *testing.T) {
	b, err := os.ReadFile("test-all.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "bash deploy/dev/run-tests.sh .dev/test.log go test ") || !strings.Contains(s, "|| status=$?") {
		t.Errorf("test-all.sh does not run go test through run-tests.sh with || status=$?")
	}
	if strings.Contains(s, "| tee") {
		t.Errorf("test-all.sh still pipes into tee under set -e")
	}
}

// TestHungDownloadNamesTheStep: a Maven fetch that hangs past
// EBBFLOW_DEV_DOWNLOAD_TIMEOUT fails with a message naming the step, the
// pom and the variable that raises the bound.
func TestHungDownloadNamesTheStep(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "mvn"), []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pomdir := filepath.Join(dir, "pom")
	if err := os.MkdirAll(pomdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pomdir, "pom.xml"), []byte("<project/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", `source lib.sh; mvn_jars fake "$1"`, "x", pomdir)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"),
		"EBBFLOW_DEV_CACHE="+filepath.Join(dir, "cache"), "EBBFLOW_DEV_RUN="+filepath.Join(dir, "run"),
		"EBBFLOW_DEV_DOWNLOAD_TIMEOUT=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("mvn_jars with a hung mvn succeeded:\n%s", out)
	}
	for _, want := range []string{"mvn dependency:copy-dependencies", filepath.Join(pomdir, "pom.xml"), "within 1s", "EBBFLOW_DEV_DOWNLOAD_TIMEOUT"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
}

// TestTestAllRunsNativeParity: make test compiles and runs the xgbnative
// tests (TestNativeParity) with EBBFLOW_XGBOOST_LIB set, and vets them.
func TestTestAllRunsNativeParity(t *testing.T) {
	b, err := os.ReadFile("test-all.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, "export EBBFLOW_XGBOOST_LIB") {
		t.Error("test-all.sh does not export EBBFLOW_XGBOOST_LIB")
	}
	var run, vet bool
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, "go test ") && strings.Contains(line, "xgbnative") && strings.Contains(line, "integration") {
			run = true
		}
		if strings.HasPrefix(line, "go vet ") && strings.Contains(line, "xgbnative") {
			vet = true
		}
	}
	if !run || !vet {
		t.Errorf("test-all.sh: go test with xgbnative %v, go vet with xgbnative %v; want both", run, vet)
	}
}
