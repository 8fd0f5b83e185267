//go:build !crashpoints

package crashpoint

import (
	"os"
	"os/exec"
	"testing"
)

// TestDefaultBuildIgnoresCrashpoint: without the crashpoints tag, a
// process with EBBFLOW_CRASHPOINT armed passes every point alive. The
// check runs in a child (this test binary), so a build that did kill
// itself fails the test instead of ending the run.
func TestDefaultBuildIgnoresCrashpoint(t *testing.T) {
	if Enabled {
		t.Fatal("Enabled is true in a build without the crashpoints tag")
	}
	if os.Getenv("CRASHPOINT_CHILD") == "1" {
		for _, p := range []string{MidWindow, MidTransaction, AfterWriteBeforeRename, AfterRenameBeforeCommit} {
			Hit(p)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDefaultBuildIgnoresCrashpoint$")
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", EnvVar+"="+MidWindow)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child with %s=%s: %v\n%s", EnvVar, MidWindow, err, out)
	}
}
