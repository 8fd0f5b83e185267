package main

import (
	"os"
	"testing"
	"time"
)

// TestProcessCPU: --receiver-pid reads a process's CPU seconds from /proc;
// they grow while it works, and a missing process is an error naming it.
func TestProcessCPU(t *testing.T) {
	c0, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Busy until the CPU time grows (a 10 ms tick), with a generous deadline.
	x, c1 := 0, c0
	for deadline := time.Now().Add(30 * time.Second); c1 <= c0 && time.Now().Before(deadline); {
		for i := 0; i < 1_000_000; i++ {
			x += i
		}
		if c1, err = processCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if c1 <= c0 {
		t.Errorf("CPU seconds did not grow while busy for 30 s: %v then %v (%d)", c0, c1, x)
	}
	if _, err := processCPU(1 << 30); err == nil {
		t.Error("a process that does not exist gave no error")
	}
}
