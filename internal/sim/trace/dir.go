package trace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvDir names the environment variable that overrides where the shared
// traces live.
const EnvDir = "EBBFLOW_TRACES_DIR"

// ErrNoTraces is wrapped by Dir and SharedPath when the shared traces
// cannot be found.
var ErrNoTraces = errors.New("shared traces not found")

// Dir returns the directory of the shared traces: $EBBFLOW_TRACES_DIR
// when set, else the first shared/traces found walking up from the
// working directory (the repository's sibling ../shared/traces, from any
// package directory or worktree). The error names where it looked and
// the variable that overrides it.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("%w: %s=%q is not a directory (unset it or point it at the traces)", ErrNoTraces, EnvDir, d)
		}
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: working directory: %v (set %s)", ErrNoTraces, err, EnvDir)
	}
	for d := wd; ; {
		c := filepath.Join(d, "shared", "traces")
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c, nil
		}
		p := filepath.Dir(d)
		if p == d {
			break
		}
		d = p
	}
	return "", fmt.Errorf("%w: no shared/traces in %s or any directory above it; set %s to the traces directory", ErrNoTraces, wd, EnvDir)
}

// SharedPath returns the path of the shared trace file name (for example
// "nasa_requests_per_minute.csv"). A missing file's error names the
// directory looked in and EBBFLOW_TRACES_DIR.
func SharedPath(name string) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", fmt.Errorf("trace %s: %w", name, err)
	}
	return InDir(dir, name)
}

// InDir returns filepath.Join(dir, name) when that file exists; otherwise
// an error naming the file, the directory and EBBFLOW_TRACES_DIR.
func InDir(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: trace %s not in %s (%v); set %s to the shared traces directory", ErrNoTraces, name, dir, err, EnvDir)
	}
	return p, nil
}
