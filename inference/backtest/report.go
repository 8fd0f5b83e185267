package backtest

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Versus compares a policy with a baseline (HPA): ratios of its
// under-provisioned minutes and replica-minutes to the baseline's. A
// ratio with a zero baseline is +Inf (or 1 when both are zero).
type Versus struct {
	Baseline                string  `json:"baseline"`
	UnderProvisionedRatio   float64 `json:"under_provisioned_ratio"`
	ReplicaMinutesRatio     float64 `json:"replica_minutes_ratio"`
	MinutesOverSLORatio     float64 `json:"minutes_over_slo_ratio"`
	ReversalsRatio          float64 `json:"reversals_ratio"`
	MeetsTarget             bool    `json:"meets_target"`
	TargetUnderProvisioned  float64 `json:"target_under_provisioned_ratio"`
	TargetReplicaMinutesMax float64 `json:"target_replica_minutes_ratio"`
}

// The target against HPA: at most half its under-provisioned
// minutes at no more than 1.1× its replica-minutes.
const (
	TargetUnderProvisionedRatio = 0.5
	TargetReplicaMinutesRatio   = 1.1
)

func ratioOf(a, b float64) float64 {
	if b == 0 {
		if a == 0 {
			return 1
		}
		return math.Inf(1)
	}
	return a / b
}

// Compare returns p against base.
func Compare(p, base *PolicyResult) Versus {
	v := Versus{
		Baseline:                base.Policy,
		UnderProvisionedRatio:   ratioOf(p.UnderProvisionedMinutes, base.UnderProvisionedMinutes),
		ReplicaMinutesRatio:     ratioOf(p.ReplicaMinutes, base.ReplicaMinutes),
		MinutesOverSLORatio:     ratioOf(float64(p.MinutesOverSLO), float64(base.MinutesOverSLO)),
		ReversalsRatio:          ratioOf(float64(p.Reversals), float64(base.Reversals)),
		TargetUnderProvisioned:  TargetUnderProvisionedRatio,
		TargetReplicaMinutesMax: TargetReplicaMinutesRatio,
	}
	v.MeetsTarget = p.UnderProvisionedMinutes <= TargetUnderProvisionedRatio*base.UnderProvisionedMinutes &&
		p.ReplicaMinutes <= TargetReplicaMinutesRatio*base.ReplicaMinutes
	return v
}

// Report is the JSON form of a result: the result and each policy's
// comparison with HPA (when HPA ran).
type Report struct {
	*Result
	VsHPA map[string]Versus `json:"vs_hpa,omitempty"`
}

// NewReport wraps a result with its comparisons to HPA.
func NewReport(r *Result) Report {
	rep := Report{Result: r}
	if h := r.Policy("hpa"); h != nil {
		rep.VsHPA = map[string]Versus{}
		for i := range r.Policies {
			if p := &r.Policies[i]; p.Policy != "hpa" {
				rep.VsHPA[p.Policy] = jsonSafe(Compare(p, h))
			}
		}
	}
	return rep
}

// jsonSafe replaces infinite ratios (encoding/json refuses them) with -1.
func jsonSafe(v Versus) Versus {
	for _, f := range []*float64{&v.UnderProvisionedRatio, &v.ReplicaMinutesRatio, &v.MinutesOverSLORatio, &v.ReversalsRatio} {
		if math.IsInf(*f, 0) || math.IsNaN(*f) {
			*f = -1
		}
	}
	return v
}

// WriteTable prints a result as an aligned table, with ratios to HPA
// when it ran.
func WriteTable(w io.Writer, r *Result) error {
	fmt.Fprintf(w, "%s (%s): %s to %s, %.0f min scored, step %d s; capacity %.4g/replica at target %.2f, start-up %s, replicas %d..%d, peak %.4g\n",
		r.Service, r.Signal, fmtMs(r.FromMs), fmtMs(r.ToMs), r.Minutes, r.StepS, r.Capacity, r.Target,
		time.Duration(r.StartupDelayS*float64(time.Second)), r.MinReplicas, r.MaxReplicas, r.PeakLoad)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	h := r.Policy("hpa")
	head := "policy\treplica-min\tunder-prov min\tmin over SLO\tscale events\treversals\treplicas"
	if h != nil {
		head += "\tunder ×HPA\treplica-min ×HPA\ttarget"
	}
	fmt.Fprintln(tw, head+"\t")
	for i := range r.Policies {
		p := &r.Policies[i]
		line := fmt.Sprintf("%s\t%.0f\t%.1f\t%d\t%d\t%d\t%d..%d", p.Policy, p.ReplicaMinutes, p.UnderProvisionedMinutes,
			p.MinutesOverSLO, p.ScaleEvents, p.Reversals, p.MinReplicas, p.MaxReplicas)
		if h != nil {
			if p.Policy == "hpa" {
				line += "\t1\t1\t"
			} else {
				v := Compare(p, h)
				mark := "no"
				if v.MeetsTarget {
					mark = "yes"
				}
				line += fmt.Sprintf("\t%.2f\t%.2f\t%s", v.UnderProvisionedRatio, v.ReplicaMinutesRatio, mark)
			}
		}
		fmt.Fprintln(tw, line+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if h != nil {
		fmt.Fprintf(w, "  target: under-provisioned ≤ %.1f× HPA's at replica-minutes ≤ %.1f× HPA's\n", TargetUnderProvisionedRatio, TargetReplicaMinutesRatio)
	}
	return nil
}

// ProgressBar returns a Progress that draws a one-line bar on w
// (a terminal), redrawing only when the percentage changes.
func ProgressBar(w io.Writer, label string) Progress {
	last := -1
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		pct := int(100 * done / total)
		if pct == last {
			return
		}
		last = pct
		const width = 30
		fill := pct * width / 100
		fmt.Fprintf(w, "\r%s [%s%s] %3d%%", label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}
