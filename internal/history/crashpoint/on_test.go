//go:build crashpoints

package crashpoint

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// TestCrashpointKills: with the crashpoints tag, an armed point SIGKILLs
// the process the N-th time it is reached, not before.
func TestCrashpointKills(t *testing.T) {
	if os.Getenv("CRASHPOINT_CHILD") == "1" {
		Hit(MidWindow) // first time: armed for the second
		os.Stdout.WriteString("past-first\n")
		Hit(MidWindow)
		os.Stdout.WriteString("past-second\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashpointKills$")
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", EnvVar+"="+MidWindow+":2")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child was not killed: err %v, output %q", err, out)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", ee)
	}
	if string(out) != "past-first\n" {
		t.Fatalf("child printed %q, want only past-first", out)
	}
}
