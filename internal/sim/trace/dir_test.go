package trace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDirFindsSharedTraces: from a package directory, walking up finds
// the repository's sibling shared/traces.
func TestDirFindsSharedTraces(t *testing.T) {
	t.Setenv(EnvDir, "")
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(d) != "traces" || filepath.Base(filepath.Dir(d)) != "shared" {
		t.Fatalf("Dir() = %s, want …/shared/traces", d)
	}
	if _, err := SharedPath("nasa_requests_per_minute.csv"); err != nil {
		t.Fatal(err)
	}
}

// TestMissingTraceNamesDirAndVariable: a missing file, an override that is
// not a directory, and no shared/traces above the working directory each
// give an error naming where it looked and EBBFLOW_TRACES_DIR.
func TestMissingTraceNamesDirAndVariable(t *testing.T) {
	empty := t.TempDir()
	t.Setenv(EnvDir, empty)
	_, err := SharedPath("nope.csv")
	if err == nil || !errors.Is(err, ErrNoTraces) {
		t.Fatalf("missing file: err = %v, want ErrNoTraces", err)
	}
	for _, want := range []string{"nope.csv", empty, EnvDir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing file: %q lacks %q", err, want)
		}
	}

	bogus := filepath.Join(empty, "absent")
	t.Setenv(EnvDir, bogus)
	if _, err := Dir(); err == nil || !strings.Contains(err.Error(), bogus) || !strings.Contains(err.Error(), EnvDir) {
		t.Errorf("bad override: err = %v, want it to name %s and %s", err, bogus, EnvDir)
	}

	t.Setenv(EnvDir, "")
	wd, _ := os.Getwd()
	t.Cleanup(func() { _ = os.Chdir(wd) })
	if err := os.Chdir(empty); err != nil {
		t.Fatal(err)
	}
	_, err = Dir()
	if err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), EnvDir) {
		t.Errorf("no shared/traces above %s: err = %v, want it to name the directory and %s", empty, err, EnvDir)
	}
}
