package scheduler

import (
	"math"
	"testing"
)

func TestSizeFromHistory(t *testing.T) {
	cfg := DefaultConfig().Sizing
	a100 := GPUModel{Name: "a100", MemoryMiB: 81920}
	v100 := GPUModel{Name: "v100", MemoryMiB: 32768}
	runs := []RunStats{
		{Run: "old", EndMs: 1, GPUs: 8, GPUUtilMean: 1.0, GPUMemPeakMiB: 1e6}, // older than the last three: ignored
		{Run: "r1", EndMs: 10, GPUs: 8, GPUUtilMean: 0.30, GPUMemPeakMiB: 100_000, CPUMean: 4, CPUPeak: 6},
		{Run: "r2", EndMs: 20, GPUs: 8, GPUUtilMean: 0.35, GPUMemPeakMiB: 120_000, CPUMean: 5, CPUPeak: 9},
		{Run: "r3", EndMs: 30, GPUs: 4, GPUUtilMean: 0.55, GPUMemPeakMiB: 90_000, CPUMean: 6, CPUPeak: 6},
	}
	s := Size(cfg, a100, 8, 16, runs)
	if !s.FromHistory || len(s.Runs) != 3 || s.Runs[0].Run != "r3" {
		t.Fatalf("runs used: %+v", s.Runs)
	}
	// busy = mean(0.30×8, 0.35×8, 0.55×4) = mean(2.4, 2.8, 2.2) = 2.4667
	if math.Abs(s.BusyGPUs-7.4/3) > 1e-9 {
		t.Errorf("busy = %v", s.BusyGPUs)
	}
	// memory: 120000 / (0.9×81920) = 1.63 → busy wins → ceil(2.47) = 3
	if s.GPUs != 3 {
		t.Errorf("a100 GPUs = %d, want 3 (%s)", s.GPUs, s.Formula)
	}
	// On 32 GiB GPUs memory binds: 120000 / (0.9×32768) = 4.07 → 5.
	if sv := Size(cfg, v100, 8, 16, runs); sv.GPUs != 5 {
		t.Errorf("v100 GPUs = %d, want 5 (%s)", sv.GPUs, sv.Formula)
	}
	// CPU: mean of means 5 × 1.5 = 7.5; mean of peaks 7 × 1.5 = 10.5.
	if s.CPURequest != 7.5 || s.CPULimit != 10.5 {
		t.Errorf("cpu request %v limit %v", s.CPURequest, s.CPULimit)
	}
}

func TestSizeWithoutHistoryKeepsRequest(t *testing.T) {
	s := Size(DefaultConfig().Sizing, GPUModel{Name: "a100", MemoryMiB: 81920}, 8, 16, nil)
	if s.FromHistory || s.GPUs != 8 || s.CPURequest != 16 || s.CPULimit != 16 {
		t.Fatalf("%+v", s)
	}
}

func TestSizeExactMultipleDoesNotRoundUp(t *testing.T) {
	// 0.25 × 8 = 2 busy GPUs exactly (in float: 2.0000000000000004 or so).
	runs := []RunStats{{Run: "r", EndMs: 1, GPUs: 8, GPUUtilMean: 0.25}, {Run: "q", EndMs: 2, GPUs: 8, GPUUtilMean: 0.25}}
	if s := Size(DefaultConfig().Sizing, GPUModel{Name: "x", MemoryMiB: 1000}, 8, 1, runs); s.GPUs != 2 {
		t.Fatalf("GPUs = %d, want 2", s.GPUs)
	}
}

func TestSizeNeverGrow(t *testing.T) {
	cfg := DefaultConfig().Sizing
	runs := []RunStats{{Run: "r", EndMs: 1, GPUs: 4, GPUUtilMean: 1, GPUMemPeakMiB: 1e6}}
	if s := Size(cfg, GPUModel{Name: "x", MemoryMiB: 1000}, 2, 1, runs); s.GPUs <= 2 {
		t.Fatalf("grow allowed by default: GPUs = %d", s.GPUs)
	}
	cfg.NeverGrow = true
	if s := Size(cfg, GPUModel{Name: "x", MemoryMiB: 1000}, 2, 1, runs); s.GPUs != 2 {
		t.Fatalf("never_grow: GPUs = %d, want 2", s.GPUs)
	}
}
