package simtraffic

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ebbflow/ebbflow/forecast/features"
)

// Scenario is a held-out evaluation: a history and the first step to score.
type Scenario struct {
	Name       string
	History    *features.History
	From       int64
	MinHistory int
}

// ColdStart is what an `ebbflow dev` run sees: n services, each starting
// from empty history at a random point of its pattern and running hours
// hours; every origin from the forecaster's fifth step on is scored.
func ColdStart(seed int64, n, hours int) (Scenario, error) {
	r := rand.New(rand.NewPCG(uint64(seed), 0xc01d))
	svcs := Services(n, seed)
	eps := make([]Episode, n)
	for i, s := range svcs {
		eps[i] = Episode{Service: s, Offset: time.Duration(r.IntN(7*1440)) * time.Minute, Minutes: hours * 60}
	}
	h, err := History(eps)
	if err != nil {
		return Scenario{}, err
	}
	return Scenario{Name: "cold start", History: h, From: h.First, MinHistory: 5}, nil
}

// Warm is a long-running forecaster: n services with days days of
// history; only the last scoreDays days are scored (a day and a week of
// history are there for the seasonal features).
func Warm(seed int64, n, days, scoreDays int) (Scenario, error) {
	svcs := Services(n, seed)
	eps := make([]Episode, n)
	for i, s := range svcs {
		eps[i] = Episode{Service: s, Minutes: days * 1440}
	}
	h, err := History(eps)
	if err != nil {
		return Scenario{}, err
	}
	return Scenario{Name: "warm", History: h, From: h.Last - int64(scoreDays*1440), MinHistory: 5}, nil
}

// The training set of the bundled models (forecast/simtraffic/retrain).
const (
	TrainSeed     = 1
	TrainLong     = 16 // services with TrainDays days of traffic each
	TrainShort    = 64 // cold-start episodes of 4–30 hours
	TrainDays     = 10
	TrainRounds   = 150
	TrainMaxDepth = 4
	ModelVersion  = "simtraffic-v1"
)

// HeldOutSeed (and HeldOutSeed+1) generate the held-out evaluation; no
// training run uses them.
const HeldOutSeed = 90210

// TrainingDescription says, for the models' metadata, what they were
// trained on.
func TrainingDescription() string {
	return fmt.Sprintf("forecast/simtraffic (internal/sim load patterns, 15 s steps averaged into 60 s windows; cpu and gpu_util from a reactive replica policy): "+
		"seed %d, %d services × %d days and %d cold-start episodes of 4–30 h; go run ./forecast/simtraffic/retrain -out testdata/models",
		TrainSeed, TrainLong, TrainDays, TrainShort)
}
