package mixing

import (
	"testing"
)

const tracesDir = "../../../shared/traces"

func TestBacktestTargets(t *testing.T) {
	for _, name := range []string{"nasa", "elb", "vm_cpu"} {
		t.Run(name, func(t *testing.T) {
			res, err := Backtest(DefaultBacktest(tracesDir, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range res.Policies {
				t.Logf("%s %-28s jobs_on_mixed=%d completed=%.3f killed=%d/%d rate=%.4f flips=%d (%.2f/h) pending=%d offline_h=%.0f busy_h=%.0f lost_h=%.1f censored=%d done=%d",
					name, p.Policy, p.JobsOnMixed, p.CompletedShare, p.Killed, p.Attempts, p.KillRate, p.Flips, p.FlipsPerHour, p.PendingMinutes, p.OfflineNodeHours, p.MixedBusyNodeHours, p.LostWorkNodeHours, p.Censored, p.JobsCompleted)
			}
			t.Logf("jobs=%d mae=%.2f filled=%d", res.Jobs, res.GeneratorMAE, res.FilledMinutes)
		})
	}
}
