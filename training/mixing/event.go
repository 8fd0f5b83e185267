package mixing

import (
	"fmt"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// EventMeta is what a nodes decision event needs beyond the decision.
type EventMeta struct {
	Cluster string
	Seq     int64
	TTL     time.Duration
	Source  string
	DryRun  bool
}

// Event turns a decision that moves nodes into a nodes decision event. Its
// id is deterministic (cluster, group, seq, time), so a replayed decider
// emits the same ids.
func (d Decision) Event(m EventMeta) schemas.NodesDecision {
	ev := schemas.NodesDecision{
		ID:        fmt.Sprintf("nodes/%s/%s/%d/%d", m.Cluster, d.Group, m.Seq, d.At.UnixMilli()),
		Kind:      schemas.DecisionNodes,
		Seq:       m.Seq,
		Target:    schemas.NodeGroupTarget(m.Cluster, d.Group),
		Group:     d.Group,
		AtMs:      d.At.UnixMilli(),
		ExpiresMs: d.At.Add(m.TTL).UnixMilli(),
		Direction: string(d.Direction),
		DryRun:    m.DryRun,
		DecidedBy: m.Source,
		Reason: schemas.NodesReason{
			Summary: d.Summary, Code: string(d.Reason), Guard: string(d.Guard),
			Thresholds: map[string]float64{
				"min_rate": d.Policy.MinRate, "max_rate": d.Policy.MaxRate, "expect_rate": d.Policy.ExpectRate,
				"spare_nodes": float64(d.Policy.SpareNodes), "dwell_s": d.Policy.Dwell.Seconds(),
				"lead_time_s": d.Policy.LeadTime().Seconds(), "forecast_horizon_s": d.Policy.ForecastHorizon.Seconds(),
				"max_flips": float64(d.Policy.MaxFlips), "flip_interval_s": d.Policy.FlipInterval.Seconds(),
				"kill_budget_per_hour": float64(d.Policy.KillBudgetPerHour),
			},
			Inputs: d.Figures.Map(),
		},
	}
	for _, p := range d.Forecast {
		ev.Reason.Forecast = append(ev.Reason.Forecast, schemas.UtilisationPoint{AtMs: p.At.UnixMilli(), Utilisation: max(p.Utilisation, 0)})
	}
	for _, c := range d.Nodes {
		ev.Nodes = append(ev.Nodes, schemas.NodeFlip{Node: c.Node, From: string(c.From), To: string(c.To), Cancel: c.Cancel, Why: c.Why,
			InferencePods: c.InferencePods, TrainingPods: c.TrainingPods, LostWorkS: c.LostWork.Seconds()})
	}
	return ev
}

// Map lists the figures by the names the nodes decision schema documents.
func (f Figures) Map() map[string]float64 {
	return map[string]float64{
		"utilisation": f.Utilisation, "peak_lead_time": f.PeakLeadTime, "peak_horizon": f.PeakHorizon,
		"demand_nodes": f.DemandNodes, "online": float64(f.Online), "offline": float64(f.Offline), "fixed": float64(f.Fixed),
		"incoming": float64(f.Incoming), "outgoing": float64(f.Outgoing), "required": float64(f.Required),
		"pending_inference": float64(f.PendingInference), "low_for_s": f.LowFor,
		"flips_left": float64(f.FlipsLeft), "kills_left": float64(f.KillsLeft),
	}
}
