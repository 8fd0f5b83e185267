package mixing

import (
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// Decisions the decider makes validate against the nodes decision schema
// and carry the thresholds, inputs, forecast and chosen nodes with why.
func TestDecisionEventValidates(t *testing.T) {
	pol := DefaultPolicy()
	for _, in := range []Input{
		{Utilisation: 0.95, Forecast: flat(0.97, pol), Nodes: append(group(6, 3, 1), Node{Name: "idle", Pool: PoolOffline})},
		{Utilisation: 0.1, Forecast: flat(0.1, pol), Nodes: group(10, 0, 1)},
	} {
		in.Now, in.Group = t0, "t4"
		d, _ := Decide(pol, State{LowSince: t0.Add(-2 * pol.Dwell)}, in)
		if len(d.Nodes) == 0 {
			t.Fatalf("no flip: %s", d.Summary)
		}
		ev := d.Event(EventMeta{Cluster: "c1", Seq: 9, TTL: 5 * time.Minute, Source: "/ebbflow/mixing"})
		b, err := schemas.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		back, err := schemas.Decode[schemas.NodesDecision](b)
		if err != nil {
			t.Fatal(err)
		}
		if back.Reason.Code != string(d.Reason) || len(back.Nodes) != len(d.Nodes) || back.Nodes[0].Why == "" ||
			back.Reason.Thresholds["min_rate"] != pol.MinRate || back.Reason.Inputs["online"] != float64(d.Figures.Online) || len(back.Reason.Forecast) == 0 {
			t.Fatalf("event lost the why: %+v", back)
		}
		if back.Subject() != "ebbflow.decisions.nodes.c1.t4" || back.EventKey() != "c1//NodeGroup/t4" {
			t.Fatalf("subject %s key %s", back.Subject(), back.EventKey())
		}
	}
}
