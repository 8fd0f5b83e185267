package scheduler

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/schemas"
)

// FamilyRunsQuery names a job family's runs in the history: the windows of
// entities svc/<Cluster>/<Namespace>/<Family>-<run>, where <run> holds no
// dash (a Job's pods are attributed to the Job by ingest's {workload}).
type FamilyRunsQuery struct {
	Cluster   string
	Namespace string
	Family    string
	// Now bounds the lookback: windows from Now − Lookback on are read.
	Now time.Time
}

// ReadFamilyRuns reads a family's past runs from the Parquet history:
// DCGM gpu_util and gpu_memory and cAdvisor cpu windows per run, reduced to
// RunStats. A family with no runs yields none (sizing then takes the request).
func ReadFamilyRuns(ctx context.Context, fsys history.FS, root string, cfg SizingConfig, q FamilyRunsQuery) ([]RunStats, error) {
	ws, err := history.ReadWindows(ctx, fsys, root, history.Query{
		SizeS:   cfg.WindowSizeS,
		FromMs:  q.Now.Add(-cfg.Lookback).UnixMilli(),
		ToMs:    q.Now.UnixMilli() + 1,
		Signals: []string{schemas.SignalGPUUtil, schemas.SignalGPUMemory, schemas.SignalCPU},
	})
	if err != nil {
		return nil, fmt.Errorf("training: read history of family %s/%s: %w", q.Namespace, q.Family, err)
	}
	prefix := schemas.ServiceEntity(q.Cluster, q.Namespace, q.Family) + "-"
	var mine []schemas.Window
	for _, w := range ws {
		if run, ok := strings.CutPrefix(w.Entity, prefix); ok && run != "" && !strings.Contains(run, "-") {
			mine = append(mine, w)
		}
	}
	return RunsFromWindows(mine, q.Family, cfg.ScrapeInterval), nil
}

// RunsFromWindows reduces the windows of a family's runs (entities
// svc/…/<family>-<run>) to one RunStats per run. DCGM reports utilisation in
// percent and framebuffer in MiB per GPU; a window of one run holds one
// sample per GPU per scrape, so its GPU count is count × interval ÷ size.
// Pure.
func RunsFromWindows(ws []schemas.Window, family string, scrapeInterval time.Duration) []RunStats {
	type acc struct {
		RunStats
		utilSum, utilN float64
		gpuCounts      []int
		memPeak        float64
		cpuSum         float64
		cpuN           int
	}
	runs := map[string]*acc{}
	for _, w := range ws {
		_, _, workload, err := schemas.ParseServiceEntity(w.Entity)
		if err != nil {
			continue
		}
		a := runs[workload]
		if a == nil {
			a = &acc{RunStats: RunStats{Run: workload}}
			runs[workload] = a
		}
		a.EndMs = max(a.EndMs, w.EndMs)
		switch w.Signal {
		case schemas.SignalGPUUtil:
			a.utilSum += w.Sum
			a.utilN += float64(w.Count)
			if w.SizeS > 0 && scrapeInterval > 0 {
				perGPU := float64(w.SizeS) / scrapeInterval.Seconds()
				a.gpuCounts = append(a.gpuCounts, max(1, int(math.Round(float64(w.Count)/perGPU))))
			}
		case schemas.SignalGPUMemory:
			a.memPeak = math.Max(a.memPeak, w.Max)
		case schemas.SignalCPU:
			v := w.Value()
			a.cpuSum += v
			a.cpuN++
			a.CPUPeak = math.Max(a.CPUPeak, v)
		}
	}
	out := make([]RunStats, 0, len(runs))
	for _, a := range runs {
		if a.utilN == 0 || len(a.gpuCounts) == 0 {
			continue // no GPU windows: nothing to size GPUs from
		}
		sort.Ints(a.gpuCounts)
		a.GPUs = a.gpuCounts[len(a.gpuCounts)/2]
		a.GPUUtilMean = clamp01(a.utilSum / a.utilN / 100)
		a.GPUMemPeakMiB = a.memPeak * float64(a.GPUs)
		if a.cpuN > 0 {
			a.CPUMean = a.cpuSum / float64(a.cpuN)
		}
		out = append(out, a.RunStats)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EndMs > out[j].EndMs })
	return out
}

// ReadDeptUtil reads a department's recent GPU utilisation from the history:
// Σ sum ÷ Σ count ÷ 100 of the gpu_util windows of every workload in its
// namespace (svc/<cluster>/<namespace>/*) in the window ending at now.
// It returns −1 (unknown: no penalty) when there are none.
func ReadDeptUtil(ctx context.Context, fsys history.FS, root string, cfg SizingConfig, cluster, namespace string, window time.Duration, now time.Time) (float64, error) {
	ws, err := history.ReadWindows(ctx, fsys, root, history.Query{SizeS: cfg.WindowSizeS, FromMs: now.Add(-window).UnixMilli(),
		ToMs: now.UnixMilli() + 1, Signals: []string{schemas.SignalGPUUtil}})
	if err != nil {
		return -1, fmt.Errorf("training: read utilisation of %s: %w", namespace, err)
	}
	return DeptUtilFromWindows(ws, cluster, namespace), nil
}

// DeptUtilFromWindows is ReadDeptUtil's reduction. Pure.
func DeptUtilFromWindows(ws []schemas.Window, cluster, namespace string) float64 {
	prefix := schemas.ServiceEntity(cluster, namespace, "")
	var sum, n float64
	for _, w := range ws {
		if w.Signal == schemas.SignalGPUUtil && strings.HasPrefix(w.Entity, prefix) {
			sum += w.Sum
			n += float64(w.Count)
		}
	}
	if n == 0 {
		return -1
	}
	return clamp01(sum / n / 100)
}
