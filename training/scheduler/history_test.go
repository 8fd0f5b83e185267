package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/schemas"
)

// seedRun writes the windows one run of a family leaves in the history:
// gpus GPUs scraped every 15 s at util % and memMiB per GPU, cpu cores.
func seedRun(start time.Time, entity string, minutes, gpus int, util, memMiB, cpu float64) []schemas.Window {
	var ws []schemas.Window
	for m := 0; m < minutes; m++ {
		s := start.Add(time.Duration(m) * time.Minute).UnixMilli()
		n := int64(4 * gpus) // 60 s / 15 s per GPU
		// Wobble utilisation ±10 points around the mean, same mean.
		u := util + []float64{-10, 10}[m%2]
		ws = append(ws,
			schemas.Window{Entity: entity, Signal: schemas.SignalGPUUtil, Kind: schemas.KindGauge, SizeS: 60, StartMs: s, EndMs: s + 60_000,
				Count: n, Sum: u * float64(n), Min: u, Max: u, Mean: u, Last: u, P50: u, P95: u, P99: u},
			schemas.Window{Entity: entity, Signal: schemas.SignalGPUMemory, Kind: schemas.KindGauge, SizeS: 60, StartMs: s, EndMs: s + 60_000,
				Count: n, Sum: memMiB * float64(n), Min: memMiB / 2, Max: memMiB * float64(1+m%3) / 3, Mean: memMiB, Last: memMiB, P50: memMiB, P95: memMiB, P99: memMiB},
		)
		rate := cpu * (1 + 0.5*float64(m%2))
		ws = append(ws, schemas.Window{Entity: entity, Signal: schemas.SignalCPU, Kind: schemas.KindCounter, SizeS: 60, StartMs: s, EndMs: s + 60_000,
			Count: 4, Sum: 1, Min: 1, Max: 1, Mean: 1, Last: 1, P50: 1, P95: 1, P99: 1, Rate: &rate})
	}
	return ws
}

func TestSizingFromSeededParquetHistory(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	fsys := history.LocalFS{}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var ws []schemas.Window
	ent := func(w string) string { return schemas.ServiceEntity("c1", "research", w) }
	// Three runs of 8 GPUs at 30 %, 40 %, 50 % mean utilisation, 40 GiB peak per GPU.
	for i, util := range []float64{30, 40, 50} {
		ws = append(ws, seedRun(now.Add(-time.Duration(10-3*i)*time.Hour), ent("bert-2026112900000"+string(rune('1'+i))), 30, 8, util, 40960, 6)...)
	}
	// An older run that must be ignored, a run of another family sharing
	// the prefix, and a different namespace.
	ws = append(ws, seedRun(now.Add(-20*time.Hour), ent("bert-20261128000000"), 30, 8, 100, 80000, 6)...)
	ws = append(ws, seedRun(now.Add(-2*time.Hour), ent("bert-large-20261129000000"), 30, 8, 100, 80000, 6)...)
	ws = append(ws, seedRun(now.Add(-2*time.Hour), schemas.ServiceEntity("c1", "product", "bert-20261129000009"), 30, 8, 100, 80000, 6)...)
	if _, err := history.WriteWindows(ctx, fsys, root, ws, "part-0.parquet"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	runs, err := ReadFamilyRuns(ctx, fsys, root, cfg.Sizing, FamilyRunsQuery{Cluster: "c1", Namespace: "research", Family: "bert", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 {
		t.Fatalf("got %d runs, want 4 (3 recent + 1 old of family bert): %+v", len(runs), runs)
	}
	for _, r := range runs {
		if r.GPUs != 8 {
			t.Errorf("run %s: GPUs = %d, want 8 (from 32 samples per 60 s window at 15 s)", r.Run, r.GPUs)
		}
	}
	a100, _ := cfg.GPUModel("a100")
	s := Size(cfg.Sizing, a100, 8, 16, runs)
	// busy = mean(0.3, 0.4, 0.5) × 8 = 3.2; peak memory 40960 × 8 = 327680 MiB
	// ÷ (0.9 × 81920) = 4.44 → memory binds: 5 GPUs.
	if s.GPUs != 5 {
		t.Errorf("GPUs = %d, want 5: %s", s.GPUs, s.Formula)
	}
	if got := s.BusyGPUs; got < 3.19 || got > 3.21 {
		t.Errorf("busy GPUs = %v, want 3.2", got)
	}
	// cpu alternates 6 and 9 cores: mean 7.5 → request 11.25; peak 9 → limit 13.5.
	if s.CPURequest != 11.25 || s.CPULimit != 13.5 {
		t.Errorf("cpu request %v limit %v, want 11.25 and 13.5", s.CPURequest, s.CPULimit)
	}
	// A family with no history keeps its request.
	none, err := ReadFamilyRuns(ctx, fsys, root, cfg.Sizing, FamilyRunsQuery{Cluster: "c1", Namespace: "research", Family: "gpt", Now: now})
	if err != nil || len(none) != 0 {
		t.Fatalf("gpt: %v %v", none, err)
	}
}

func TestDeptUtilFromHistory(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var ws []schemas.Window
	// research: one run at 30 % on 8 GPUs and one at 60 % on 8 GPUs → 45 %.
	ws = append(ws, seedRun(now.Add(-30*time.Minute), schemas.ServiceEntity("c1", "research", "a-20261129000001"), 20, 8, 30, 1000, 1)...)
	ws = append(ws, seedRun(now.Add(-30*time.Minute), schemas.ServiceEntity("c1", "research", "b-20261129000001"), 20, 8, 60, 1000, 1)...)
	// Outside the hour and in another namespace: ignored.
	ws = append(ws, seedRun(now.Add(-3*time.Hour), schemas.ServiceEntity("c1", "research", "c-20261129000001"), 20, 8, 100, 1000, 1)...)
	ws = append(ws, seedRun(now.Add(-30*time.Minute), schemas.ServiceEntity("c1", "researchers", "d-20261129000001"), 20, 8, 100, 1000, 1)...)
	if _, err := history.WriteWindows(ctx, history.LocalFS{}, root, ws, "part-0.parquet"); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig().Sizing
	u, err := ReadDeptUtil(ctx, history.LocalFS{}, root, cfg, "c1", "research", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if u < 0.449 || u > 0.451 {
		t.Errorf("research utilisation %v, want 0.45", u)
	}
	if u, _ := ReadDeptUtil(ctx, history.LocalFS{}, root, cfg, "c1", "product", time.Hour, now); u != -1 {
		t.Errorf("product with no windows: %v, want -1 (unknown)", u)
	}
}
