package mixing

import (
	"math"
	"sort"
	"testing"
)

// The generated stream follows the Philly curve closely, is mostly small
// jobs and has a heavy duration tail, and the same seed gives the same
// stream.
func TestGenerateJobsFollowsPhilly(t *testing.T) {
	tr, _, err := ReadTrace(tracesDir(t), "philly", TrainingTrace)
	if err != nil {
		t.Fatal(err)
	}
	share := tr.Values[:14*1440]
	cfg := DefaultJobGen()
	cfg.Nodes = 52
	jobs, mae := GenerateJobs(share, cfg)
	var mean float64
	for _, s := range share {
		mean += s * cfg.Nodes
	}
	mean /= float64(len(share))
	if mae > 0.1*mean {
		t.Fatalf("busy curve MAE %.2f nodes is over 10%% of the mean target %.1f", mae, mean)
	}
	single, long := 0, 0
	durs := make([]int, len(jobs))
	for i, j := range jobs {
		if j.Nodes == 1 {
			single++
		}
		if j.Expected > 12*60 {
			long++
		}
		durs[i] = j.Minutes
	}
	sort.Ints(durs)
	if frac := float64(single) / float64(len(jobs)); frac < 0.6 {
		t.Fatalf("only %.2f of jobs take one node: not mostly small", frac)
	}
	p50, p99 := durs[len(durs)/2], durs[len(durs)*99/100]
	if p50 > 120 || p99 < 12*60 || durs[len(durs)-1] < 24*60 {
		t.Fatalf("durations p50 %d min, p99 %d min, max %d min: not minutes-to-days heavy tailed", p50, p99, durs[len(durs)-1])
	}
	if long == 0 || float64(long)/float64(len(jobs)) > 0.1 {
		t.Fatalf("%d of %d jobs expected over 12 h", long, len(jobs))
	}
	again, _ := GenerateJobs(share, cfg)
	if len(again) != len(jobs) || again[len(jobs)/2] != jobs[len(jobs)/2] {
		t.Fatal("same seed, different stream")
	}
	cfg.Seed = 2
	other, _ := GenerateJobs(share, cfg)
	if len(other) == len(jobs) && other[10] == jobs[10] && math.Abs(float64(other[100].Minutes-jobs[100].Minutes)) == 0 {
		t.Fatal("another seed gave the same stream")
	}
}
