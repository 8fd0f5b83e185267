package autoscale

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/ebbflow/ebbflow/schemas"
)

const nowMs = int64(1_700_000_000_000)

// testPolicy: qps capacity 100 rps/replica at expectRate 0.5 (r = y/50),
// cpu 1 core at 0.5 (r = cores/0.5), gpu_util 100% at 0.7 (r = u/70 × N).
func testPolicy() Policy {
	return Policy{
		MinReplicas: 1, MaxReplicas: 20, MaxStepUp: 10, MaxStepDown: 10,
		StartupTime: 150 * time.Second, Tolerance: 0.1,
		Signals: map[string]SignalPolicy{
			schemas.SignalQPS:     {ExpectRate: 0.5, Capacity: 100},
			schemas.SignalCPU:     {ExpectRate: 0.5, Capacity: 1},
			schemas.SignalGPUUtil: {ExpectRate: 0.7, Capacity: 100},
		},
	}
}

func fc(vals ...float64) []schemas.HorizonValue {
	out := make([]schemas.HorizonValue, len(vals))
	for i, v := range vals {
		out[i] = schemas.HorizonValue{Minutes: i + 1, AtMs: nowMs + int64(i+1)*60000, Value: v}
	}
	return out
}

func qps(cur float64, horizons ...float64) map[string]SignalInput {
	return map[string]SignalInput{schemas.SignalQPS: {Current: cur, HasCurrent: true, Horizons: fc(horizons...)}}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name      string
		n         int32
		signals   map[string]SignalInput
		pol       func(*Policy)
		st        func(*State)
		want      int32
		guard     Guard
		winner    string
		source    string
		formula   string
		wantAtMax bool
	}{
		{name: "expansion is ceil of the max forecast up to the start-up horizon",
			n: 4, signals: qps(100, 150, 210, 260, 290, 400), want: 6, winner: "qps", source: SourceForecast, formula: "ceil"},
		{name: "contraction is floor",
			n: 4, signals: qps(100, 110, 105), want: 2, winner: "qps", source: SourceForecast, formula: "floor: r"},
		{name: "contraction floor raised so it cannot re-expand",
			n: 4, signals: qps(100, 130), want: 3, winner: "qps", formula: "floor (raised"},
		{name: "reactive value wins when it demands more than the forecast",
			n: 4, signals: qps(300, 200, 200, 200), want: 6, winner: "qps", source: SourceReactive},
		{name: "no forecast: reactive only",
			n: 4, signals: map[string]SignalInput{schemas.SignalQPS: {Current: 300, HasCurrent: true}}, want: 6, source: SourceReactive},
		{name: "largest demand wins (gpu mean signal)",
			n: 4, signals: map[string]SignalInput{
				schemas.SignalQPS:     {Current: 150, HasCurrent: true, Horizons: fc(150, 150, 150)},
				schemas.SignalGPUUtil: {Current: 90, HasCurrent: true, Horizons: fc(90, 90, 90)},
			}, want: 6, winner: "gpu_util"},
		{name: "cpu is a sum signal",
			n: 2, signals: map[string]SignalInput{schemas.SignalCPU: {Current: 3, HasCurrent: true}}, want: 6, winner: "cpu"},
		{name: "within tolerance holds",
			n: 4, signals: qps(200, 205), want: 4},
		{name: "five-minute horizons: the first window starts within the lead",
			n: 2, signals: map[string]SignalInput{schemas.SignalQPS: {Horizons: []schemas.HorizonValue{{Minutes: 5, Value: 240}}}}, want: 5, source: SourceForecast},
		{name: "fallback forecast is labelled",
			n: 2, signals: map[string]SignalInput{schemas.SignalQPS: {Horizons: fc(240), Fallback: schemas.FallbackLastValue}}, want: 5, source: SourceFallback},
		{name: "scale from zero on a sum signal",
			n: 0, signals: qps(120, 120), pol: func(p *Policy) { p.MinReplicas = 0 }, want: 3},
		{name: "latency above SLO forbids contraction",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.LatencySLOMs = 200 },
			st: func(s *State) { s.LatencyP99Ms, s.HasLatency = 300, true }, want: 4, guard: GuardLatencySLO},
		{name: "latency above SLO forces expansion",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.LatencySLOMs = 200; p.BreachScaleRatio = 0.25 },
			st: func(s *State) { s.LatencyP99Ms, s.HasLatency = 300, true }, want: 5, guard: GuardLatencySLO},
		{name: "latency below SLO allows contraction",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.LatencySLOMs = 200; p.BreachScaleRatio = 0.25 },
			st: func(s *State) { s.LatencyP99Ms, s.HasLatency = 150, true }, want: 2},
		{name: "error ratio above limit forbids contraction",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.ErrorRatioLimit = 0.05 },
			st: func(s *State) { s.ErrorRate, s.QPS, s.HasErrorRate = 10, 100, true }, want: 4, guard: GuardErrorRatio},
		{name: "error ratio forces expansion only when configured",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.ErrorRatioLimit = 0.05; p.ExpandOnErrors = true; p.BreachScaleRatio = 0.5 },
			st: func(s *State) { s.ErrorRate, s.QPS, s.HasErrorRate = 10, 100, true }, want: 6, guard: GuardErrorRatio},
		{name: "warm-up forbids contraction right after start",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.ScaleDownStabilization = 300 * time.Second },
			st: func(s *State) { s.FirstSeenMs = nowMs - 60_000 }, want: 4, guard: GuardWarmup},
		{name: "warm-up does not hold expansion",
			n: 4, signals: qps(300, 300), pol: func(p *Policy) { p.ScaleDownStabilization = 300 * time.Second },
			st: func(s *State) { s.FirstSeenMs = nowMs - 60_000 }, want: 6},
		{name: "stabilization keeps the highest recommendation in the window",
			n: 6, signals: qps(100, 100), pol: func(p *Policy) { p.ScaleDownStabilization = 300 * time.Second },
			st: func(s *State) {
				s.Recommendations = []Recommendation{{AtMs: nowMs - 100_000, Replicas: 5}, {AtMs: nowMs - 400_000, Replicas: 9}}
			}, want: 5, guard: GuardStabilization},
		{name: "stabilization never raises above N",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.ScaleDownStabilization = 300 * time.Second },
			st: func(s *State) { s.Recommendations = []Recommendation{{AtMs: nowMs - 10_000, Replicas: 9}} }, want: 4, guard: GuardStabilization},
		{name: "recommendations outside the window are forgotten",
			n: 6, signals: qps(100, 100), pol: func(p *Policy) { p.ScaleDownStabilization = 300 * time.Second },
			st: func(s *State) { s.Recommendations = []Recommendation{{AtMs: nowMs - 301_000, Replicas: 9}} }, want: 2},
		{name: "scale-down cooldown after a scale-up",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.ScaleDownCooldown = 120 * time.Second },
			st: func(s *State) { s.LastScaleUpMs = nowMs - 60_000 }, want: 4, guard: GuardScaleDownCooldown},
		{name: "scale-down cooldown elapsed",
			n: 4, signals: qps(100, 100), pol: func(p *Policy) { p.ScaleDownCooldown = 120 * time.Second },
			st: func(s *State) { s.LastScaleUpMs = nowMs - 121_000 }, want: 2},
		{name: "scale-up cooldown",
			n: 4, signals: qps(300, 300), pol: func(p *Policy) { p.ScaleUpCooldown = 60 * time.Second },
			st: func(s *State) { s.LastScaleUpMs = nowMs - 30_000 }, want: 4, guard: GuardScaleUpCooldown},
		{name: "max step up",
			n: 4, signals: qps(1500, 1500), pol: func(p *Policy) { p.MaxStepUp = 3 }, want: 7, guard: GuardMaxStep},
		{name: "max step down",
			n: 10, signals: qps(10, 10), pol: func(p *Policy) { p.MaxStepDown = 2 }, want: 8, guard: GuardMaxStep},
		{name: "max replicas caps and flags",
			n: 18, signals: qps(1500, 1500), want: 20, guard: GuardMaxReplicas, wantAtMax: true},
		{name: "min replicas floors",
			n: 2, signals: qps(0, 0), want: 1, guard: GuardMinReplicas},
		{name: "a trace of load at N=1 holds (0 would re-expand)",
			n: 1, signals: qps(5.2e-8, 5.2e-8), pol: func(p *Policy) { p.MinReplicas = 0 }, want: 1},
		{name: "no load contracts to zero when min is 0",
			n: 1, signals: qps(0, 0), pol: func(p *Policy) { p.MinReplicas = 0 }, want: 0},
		{name: "float noise above an integer does not add a replica",
			n: 4, signals: qps(300.00000001, 300.00000001), want: 6},
		{name: "no data holds",
			n: 3, signals: map[string]SignalInput{schemas.SignalQPS: {}}, want: 3, guard: GuardNoData},
		{name: "signal without policy is ignored",
			n: 3, signals: map[string]SignalInput{schemas.SignalMemory: {Current: 1e12, HasCurrent: true}}, want: 3, guard: GuardNoData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pol := testPolicy()
			if tc.pol != nil {
				tc.pol(&pol)
			}
			if err := pol.Validate(); err != nil {
				t.Fatalf("policy: %v", err)
			}
			st := State{NowMs: nowMs, Replicas: tc.n, Signals: tc.signals}
			if tc.st != nil {
				tc.st(&st)
			}
			d := Decide(st, pol)
			if d.Desired != tc.want {
				t.Fatalf("desired %d, want %d; reason %+v", d.Desired, tc.want, d.Reason)
			}
			if Guard(d.Reason.Guard) != tc.guard {
				t.Errorf("guard %q, want %q (%s)", d.Reason.Guard, tc.guard, d.Reason.Summary)
			}
			if d.AtMax != tc.wantAtMax {
				t.Errorf("AtMax %v, want %v", d.AtMax, tc.wantAtMax)
			}
			if tc.winner != "" && !strings.Contains(d.Reason.Summary, tc.winner+" demand") {
				t.Errorf("summary %q does not name winner %s", d.Reason.Summary, tc.winner)
			}
			if tc.source != "" {
				if len(d.Reason.Demands) == 0 || d.Reason.Demands[0].Source != tc.source {
					t.Errorf("demands %+v, want source %s", d.Reason.Demands, tc.source)
				}
			}
			if tc.formula != "" && !strings.HasPrefix(d.Reason.Formula, tc.formula) {
				t.Errorf("formula %q, want prefix %q", d.Reason.Formula, tc.formula)
			}
			if d.Reason.Summary == "" || d.Reason.HorizonMinutes < 4 {
				t.Errorf("reason incomplete: %+v", d.Reason)
			}
		})
	}
}

func TestHysteresisGuard(t *testing.T) {
	band := func(p *Policy) { p.ScaleDownBand = 0.1 }
	tests := []struct {
		name    string
		n       int32
		signals map[string]SignalInput
		want    int32
		rec     int32
		guard   Guard
	}{
		// r = 110/50 = 2.2: the floor would take 2; the band contracts to
		// the count holding the demand at 0.9 × expectRate: ceil(2.2/0.9) = 3.
		{name: "contraction goes to the count that holds the demand inside the band", n: 4, signals: qps(100, 110, 105), want: 3, rec: 3, guard: GuardHysteresis},
		// r = 3.2: the floor (raised) would take 3; ceil(3.2/0.9) = 4 = N: hold.
		{name: "a demand inside the band holds", n: 4, signals: qps(160, 160), want: 4, rec: 4, guard: GuardHysteresis},
		// Expansion is untouched: r = 6 → 6.
		{name: "expansion is not affected", n: 4, signals: qps(300, 300), want: 6, rec: 7, guard: GuardNone},
		// r = 1.8 exactly fits 2 at 0.9: ceil(2.0) = 2 (float noise absorbed).
		{name: "the band edge itself contracts", n: 4, signals: qps(90, 90), want: 2, rec: 2, guard: GuardNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pol := testPolicy()
			band(&pol)
			d := Decide(State{NowMs: nowMs, Replicas: tc.n, Signals: tc.signals}, pol)
			if d.Desired != tc.want || Guard(d.Reason.Guard) != tc.guard {
				t.Fatalf("desired %d guard %q, want %d %q; reason %+v", d.Desired, d.Reason.Guard, tc.want, tc.guard, d.Reason)
			}
			if d.Recommendation != tc.rec {
				t.Errorf("recommendation %d, want %d (the band's hold count, for stabilization)", d.Recommendation, tc.rec)
			}
		})
	}
	// Stabilization then keeps the highest hold count of the window.
	pol := testPolicy()
	band(&pol)
	pol.ScaleDownStabilization = 5 * time.Minute
	st := State{NowMs: nowMs, Replicas: 6, Signals: qps(100, 100), Recommendations: []Recommendation{{AtMs: nowMs - 60_000, Replicas: 5}}}
	if d := Decide(st, pol); d.Desired != 5 || Guard(d.Reason.Guard) != GuardStabilization {
		t.Errorf("with a recommendation of 5 in the window: desired %d guard %q, want 5 (stabilization)", d.Desired, d.Reason.Guard)
	}
	pol.ScaleDownBand = 1
	if err := pol.Validate(); err == nil || !strings.Contains(err.Error(), "scale_down_band") {
		t.Errorf("band 1: %v, want an error naming scale_down_band", err)
	}
	if !strings.Contains(strings.Join(guardNames(), ","), string(GuardHysteresis)) {
		t.Error("the hysteresis guard is not in AllGuards")
	}
}

func guardNames() []string {
	var out []string
	for _, g := range AllGuards {
		out = append(out, string(g))
	}
	return out
}

// TestHysteresisCutsFlapping: a demand wobbling between 3.3 and 3.95
// replicas' worth flaps between 3 and 4 without the band (the floor takes
// 3, then 3.95 > 3 × 1.1 re-expands) and holds 4 with it.
func TestHysteresisCutsFlapping(t *testing.T) {
	run := func(band float64) (changes int) {
		pol := testPolicy()
		pol.ScaleDownBand = band
		st := State{Replicas: 4}
		for i := range 120 {
			st.NowMs = nowMs + int64(i)*60_000
			y := 165.0 // r = 3.3
			if i%4 < 2 {
				y = 197.5 // r = 3.95
			}
			st.Signals = qps(y, y)
			d := Decide(st, pol)
			st = Remember(st, pol, d)
			if d.Desired != st.Replicas {
				changes++
			}
			st.Replicas = d.Desired
		}
		return changes
	}
	without, with := run(0), run(0.1)
	if with != 0 || without == 0 {
		t.Errorf("scale changes: %d without the band, %d with it; want some, then none", without, with)
	}
}

func TestDecideReasonValidatesInDecision(t *testing.T) {
	pol := testPolicy()
	d := Decide(State{NowMs: nowMs, Replicas: 4, Signals: qps(300, 300)}, pol)
	sd := schemas.ScaleDecision{ID: "x", Kind: schemas.DecisionScale, Seq: 1, Entity: "svc/c/n/w",
		Target: schemas.Target{Cluster: "c", Namespace: "n", Kind: "Deployment", Name: "w"},
		AtMs:   nowMs, ExpiresMs: nowMs + 1, From: 4, To: d.Desired, Reason: d.Reason, DecidedBy: "t"}
	if _, err := schemas.Marshal(sd); err != nil {
		t.Fatalf("decision with Decide's reason violates schema: %v", err)
	}
	if d.Reason.Inputs["demand_ratio"] != 6 {
		t.Errorf("inputs %v: want demand_ratio 6", d.Reason.Inputs)
	}
}

func TestHorizonMinutes(t *testing.T) {
	for _, tc := range []struct {
		startup time.Duration
		want    int
	}{{150 * time.Second, 4}, {60 * time.Second, 2}, {61 * time.Second, 3}, {0, 1}, {90 * time.Second, 3}, {5 * time.Minute, 6}} {
		if got := (Policy{StartupTime: tc.startup}).HorizonMinutes(); got != tc.want {
			t.Errorf("startup %v: horizon %d, want %d", tc.startup, got, tc.want)
		}
	}
}

func TestRememberPrunesAndRecordsScaleTimes(t *testing.T) {
	pol := testPolicy()
	pol.ScaleDownStabilization = 300 * time.Second
	st := State{NowMs: nowMs, Replicas: 4, Recommendations: []Recommendation{{AtMs: nowMs - 400_000, Replicas: 9}, {AtMs: nowMs - 10_000, Replicas: 5}}}
	got := Remember(st, pol, Decision{Desired: 6, Recommendation: 6})
	if len(got.Recommendations) != 2 || got.Recommendations[1].Replicas != 6 || got.Recommendations[0].Replicas != 5 {
		t.Fatalf("recommendations %+v", got.Recommendations)
	}
	if got.LastScaleUpMs != nowMs || got.LastScaleDownMs != 0 || got.FirstSeenMs != nowMs {
		t.Fatalf("scale times %+v", got)
	}
	if len(st.Recommendations) != 2 || st.Recommendations[0].Replicas != 9 {
		t.Fatal("Remember modified its input")
	}
}

// TestDecideProperties: for any sequence of inputs, the count stays within
// bounds and never moves by more than the max step; a contraction never
// lands on a count that the same load would expand again.
func TestDecideProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pol := testPolicy()
		pol.MinReplicas = rapid.Int32Range(0, 5).Draw(t, "min")
		pol.MaxReplicas = rapid.Int32Range(max(pol.MinReplicas, 1), 40).Draw(t, "max")
		pol.MaxStepUp = rapid.Int32Range(1, 8).Draw(t, "stepUp")
		pol.MaxStepDown = rapid.Int32Range(1, 8).Draw(t, "stepDown")
		pol.Tolerance = rapid.Float64Range(0, 0.3).Draw(t, "tol")
		pol.ScaleDownStabilization = time.Duration(rapid.IntRange(0, 600).Draw(t, "stab")) * time.Second
		pol.ScaleDownCooldown = time.Duration(rapid.IntRange(0, 300).Draw(t, "cdDown")) * time.Second
		pol.ScaleUpCooldown = time.Duration(rapid.IntRange(0, 120).Draw(t, "cdUp")) * time.Second
		pol.LatencySLOMs = rapid.Float64Range(0, 500).Draw(t, "slo")
		pol.BreachScaleRatio = rapid.Float64Range(0, 1).Draw(t, "breach")
		pol.ExpandOnErrors = rapid.Bool().Draw(t, "expandOnErrors")
		st := State{NowMs: nowMs, Replicas: rapid.Int32Range(pol.MinReplicas, pol.MaxReplicas).Draw(t, "n0")}
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			st.NowMs += int64(rapid.IntRange(1, 120).Draw(t, "dt")) * 1000
			q := rapid.Float64Range(0, 5000).Draw(t, "qps")
			st.Signals = map[string]SignalInput{
				schemas.SignalQPS:     {Current: q, HasCurrent: rapid.Bool().Draw(t, "hasQ"), Horizons: fc(rapid.Float64Range(0, 5000).Draw(t, "f1"), rapid.Float64Range(0, 5000).Draw(t, "f3"))},
				schemas.SignalGPUUtil: {Current: rapid.Float64Range(0, 100).Draw(t, "gpu"), HasCurrent: rapid.Bool().Draw(t, "hasG")},
			}
			st.LatencyP99Ms, st.HasLatency = rapid.Float64Range(0, 1000).Draw(t, "lat"), rapid.Bool().Draw(t, "hasLat")
			st.ErrorRate, st.QPS, st.HasErrorRate = rapid.Float64Range(0, 50).Draw(t, "err"), q, rapid.Bool().Draw(t, "hasErr")
			d := Decide(st, pol)
			if d.Desired < pol.MinReplicas || d.Desired > pol.MaxReplicas {
				t.Fatalf("step %d: desired %d outside [%d, %d]: %s", i, d.Desired, pol.MinReplicas, pol.MaxReplicas, d.Reason.Summary)
			}
			if d.Desired > st.Replicas+pol.MaxStepUp || d.Desired < st.Replicas-pol.MaxStepDown {
				t.Fatalf("step %d: %d → %d exceeds steps +%d/-%d: %s", i, st.Replicas, d.Desired, pol.MaxStepUp, pol.MaxStepDown, d.Reason.Summary)
			}
			st = Remember(st, pol, d)
			st.Replicas = d.Desired
		}
	})
}

func TestContractionDoesNotFlap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pol := testPolicy()
		pol.MinReplicas, pol.MaxReplicas, pol.MaxStepDown, pol.MaxStepUp = 0, 1000, 1000, 1000
		pol.Tolerance = rapid.Float64Range(0, 0.5).Draw(t, "tol")
		n := rapid.Int32Range(1, 200).Draw(t, "n")
		y := rapid.Float64Range(0, float64(n)*50).Draw(t, "qps") // r = y/50 ≤ n
		sig := map[string]SignalInput{schemas.SignalQPS: {Current: y, HasCurrent: true}}
		d := Decide(State{NowMs: nowMs, Replicas: n, Signals: sig}, pol)
		if d.Desired >= n {
			return
		}
		again := Decide(State{NowMs: nowMs + 1, Replicas: d.Desired, Signals: sig}, pol)
		if again.Desired > d.Desired {
			t.Fatalf("contracted %d → %d, same load re-expands to %d (%s)", n, d.Desired, again.Desired, again.Reason.Formula)
		}
	})
}

func TestPolicyFromAnnotations(t *testing.T) {
	base := testPolicy()
	tests := []struct {
		name    string
		ann     map[string]string
		check   func(Policy) bool
		wantErr string
	}{
		{name: "bounds and steps", ann: map[string]string{AnnotationMinReplicas: "2", AnnotationMaxReplicas: "9", AnnotationMaxStepUp: "4"},
			check: func(p Policy) bool { return p.MinReplicas == 2 && p.MaxReplicas == 9 && p.MaxStepUp == 4 }},
		{name: "expect rate of an existing signal keeps capacity", ann: map[string]string{"ebbflow.io/expect-rate-qps": "0.6"},
			check: func(p Policy) bool { return p.Signals["qps"] == SignalPolicy{ExpectRate: 0.6, Capacity: 100} }},
		{name: "new signal", ann: map[string]string{"ebbflow.io/expect-rate-memory": "0.8", "ebbflow.io/capacity-memory": "4e9"},
			check: func(p Policy) bool { return p.Signals["memory"] == SignalPolicy{ExpectRate: 0.8, Capacity: 4e9} }},
		{name: "durations and SLO", ann: map[string]string{AnnotationStartupTime: "4m", AnnotationLatencySLOMs: "250", AnnotationStabilization: "10m"},
			check: func(p Policy) bool {
				return p.HorizonMinutes() == 5 && p.LatencySLOMs == 250 && p.ScaleDownStabilization == 10*time.Minute
			}},
		{name: "scale-down band", ann: map[string]string{AnnotationScaleDownBand: "0.2"},
			check: func(p Policy) bool { return p.ScaleDownBand == 0.2 }},
		{name: "scale-down band out of range", ann: map[string]string{AnnotationScaleDownBand: "1.5"}, wantErr: "scale_down_band"},
		{name: "foreign and actuator annotations ignored", ann: map[string]string{"ebbflow.io/last-decision-id": "x", "app": "y"},
			check: func(p Policy) bool { return p.MaxReplicas == base.MaxReplicas }},
		{name: "bad number", ann: map[string]string{AnnotationMaxReplicas: "many"}, wantErr: "ebbflow.io/max-replicas"},
		{name: "inconsistent bounds", ann: map[string]string{AnnotationMinReplicas: "30"}, wantErr: "max_replicas"},
		{name: "expect rate out of range", ann: map[string]string{"ebbflow.io/expect-rate-qps": "1.5"}, wantErr: "signals.qps.expect_rate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PolicyFromAnnotations(base, tc.ann)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want mention of %q", err, tc.wantErr)
				}
				if p.MaxReplicas != base.MaxReplicas || p.MinReplicas != base.MinReplicas {
					t.Fatal("a bad annotation must leave the base policy")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(p) {
				t.Fatalf("policy %+v", p)
			}
			if base.Signals["qps"].ExpectRate != 0.5 {
				t.Fatal("base policy was modified")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.ConsumerGroup = "" }, "consumer_group"},
		{func(c *Config) { c.InitialOffset = "latest" }, "initial_offset"},
		{func(c *Config) { c.DecisionTTL = 0 }, "decision_ttl"},
		{func(c *Config) { c.DefaultKind = "ReplicaSet" }, "default_kind"},
		{func(c *Config) { c.Policy.MaxStepUp = 0 }, "policy.max_step_up"},
		{func(c *Config) { c.Services = map[string]ServiceConfig{"svc/a/b": {}} }, "services.svc/a/b"},
		{func(c *Config) {
			c.Services = map[string]ServiceConfig{"svc/a/b/c": {Policy: map[string]string{"max-replicas": "x"}}}
		}, "services.svc/a/b/c.policy"},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("err %v, want prefix %q", err, tc.want)
		}
	}
}
