package dev

import (
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestDevLaunchesAndScalesAModelServer: `ebbflow dev` registers a serving
// spec after launch_after; the servers decider decides the launch, the
// actuator's inference handler applies the Deployment, the simulated
// cluster runs its pods (Triton metrics), and the autoscaler scales the
// new service up from min_replicas to what its load needs.
func TestDevLaunchesAndScalesAModelServer(t *testing.T) {
	s, out := runDev(t, 45*time.Minute, Options{}, func(c *wire.DevConfig) {
		c.Services = 1
		c.LaunchAfter = 5 * time.Minute
		c.LaunchLoad = 3 // ≈ 5 replicas at 70%
	})
	if len(s.Servers) != 1 {
		t.Fatalf("inference decisions: %+v\n%s", s.Servers, out)
	}
	e := s.Servers[0]
	if e.Decision.Action != schemas.InferenceLaunch || e.Decision.Model.Name != LaunchedModel || e.Outcome != schemas.OutcomeApplied {
		t.Fatalf("launch: %+v", e)
	}
	if at := time.UnixMilli(e.Decision.AtMs); at.Before(s.Start.Add(5 * time.Minute)) {
		t.Errorf("launched at %v, before launch_after", at)
	}
	entity := schemas.ServiceEntity("default", "inference", LaunchedModel)
	var found bool
	for _, st := range s.Sim {
		if st.Entity != entity {
			continue
		}
		found = true
		if st.ReplicaMinutes == 0 || st.MaxDesired < 3 || st.ScaleUps == 0 {
			t.Errorf("the launched server was not scaled: %+v", st)
		}
	}
	if !found {
		t.Fatalf("no simulated service %s", entity)
	}
	for _, sv := range s.Services {
		if sv.Entity == entity {
			if sv.Decisions == 0 || sv.ScaleUps == 0 {
				t.Errorf("%s: %d scale decisions, %d scale-ups read back from the topics", entity, sv.Decisions, sv.ScaleUps)
			}
			return
		}
	}
	t.Errorf("no windows of %s on the topics: its pods were not scraped", entity)
}
