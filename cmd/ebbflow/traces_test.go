package main

import (
	"testing"

	"github.com/ebbflow/ebbflow/internal/sim/trace"
)

// sharedTrace is the path of a shared trace ($EBBFLOW_TRACES_DIR or the
// repository's sibling shared/traces); a missing one fails the test with
// the directory looked in and the variable that overrides it.
func sharedTrace(t testing.TB, name string) string {
	t.Helper()
	p, err := trace.SharedPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
