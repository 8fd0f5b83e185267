package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/sim/trace"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/backtest"
	"github.com/ebbflow/ebbflow/training/kueue"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

func init() { subcommands = append(subcommands, newTrainingCmd) }

func newTrainingCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "training",
		Short: "Training scheduler on Kueue: submit jobs sized from history, show the queue with score terms, backtest",
		Long: `The training scheduler runs training jobs as Kueue-managed batch/v1 Jobs and adds
what Kueue lacks: sizing from the job family's history, WPAI's score (1,000,000
within the department's quota, 1,000 when borrowing, a penalty for the
department's low utilisation, credit for waiting) written as each Workload's
priority, GPU-model preference with fallbacks, long jobs to the fixed pool,
and a pre-emption guard (minimum runtime, kill budget). Configuration: section
'training'. Manual: docs/training.md.`,
	}
	cmd.AddCommand(newTrainingSubmitCmd(g), newTrainingQueueCmd(g), newTrainingRefreshCmd(g), newTrainingSetupCmd(g), newTrainingBacktestCmd())
	return cmd
}

func newTrainingSubmitCmd(g *globals) *cobra.Command {
	var dryRun, publish bool
	cmd := &cobra.Command{
		Use:   "submit FILE",
		Short: "Validate a job spec, size it from history, render the Kueue Job and create it",
		Long: `submit reads a job spec (YAML; an unknown field or a bad value is an error naming
the field and line), sizes the job from its family's past runs in the history
(GPUs = ceil(max(mean utilisation × GPUs of the last runs, peak GPU memory ÷
(memory_fraction × memory per GPU))); CPU request and limit from recent means
and peaks with headroom), chooses the GPU model (preference order, then
fallbacks; within quota before borrowing) from the ClusterQueues' usage,
scores it, and creates a suspended batch/v1 Job labelled for Kueue.
--dry-run prints the sizing, the score, the decisions and the Job without
touching the cluster. --publish also sends the decisions to Kafka.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("training submit: %w", err)
			}
			sub, err := wire.SubmitTraining(ctx, c, f, dryRun)
			f.Close()
			if err != nil {
				var se *scheduler.SpecError
				if errors.As(err, &se) {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				return err
			}
			out := cmd.OutOrStdout()
			printPlan(out, sub.Spec, sub.Plan)
			if dryRun {
				y, err := yaml.Marshal(sub.Job)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "---\n%s", y)
			} else {
				fmt.Fprintf(out, "created job %s/%s (Kueue queue %s)\n", sub.Job.Namespace, sub.Job.Name, sub.Job.Labels[kueue.LabelQueueName])
			}
			for _, d := range sub.Decisions {
				b, err := schemas.Marshal(d)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "decision %s\n", b)
			}
			if publish {
				return publishDecisions(ctx, c, sub.Decisions, dryRun)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the sizing, score, decisions and Job; create nothing")
	cmd.Flags().BoolVar(&publish, "publish", false, "publish the decisions to the Kafka decisions topic")
	return cmd
}

func cluster(c wire.Config) string { return wire.TrainingCluster(c) }

func kueueClient(c wire.Config) (*kueue.Client, error) { return wire.KueueClient(c) }

func printPlan(w io.Writer, spec scheduler.JobSpec, p scheduler.Plan) {
	fmt.Fprintf(w, "job %s/%s  department %s  family %s\n", p.Namespace, p.JobName, spec.Department, spec.Family)
	fmt.Fprintf(w, "placement: %s; GPU models tried: %s\n", p.Placement.Reason, strings.Join(p.Placement.Models, " → "))
	for _, m := range p.Placement.Models {
		s := p.Sizings[m]
		fmt.Fprintf(w, "sizing on %s: %s; CPU request %.3g limit %.3g (from %d runs)\n", m, s.Formula, s.CPURequest, s.CPULimit, len(s.Runs))
	}
	for _, r := range p.Sizing.Runs {
		fmt.Fprintf(w, "  run %s: %d GPUs, mean util %.0f%%, peak GPU memory %.0f MiB, CPU mean %.2f peak %.2f\n",
			r.Run, r.GPUs, 100*r.GPUUtilMean, r.GPUMemPeakMiB, r.CPUMean, r.CPUPeak)
	}
	fmt.Fprintf(w, "chosen: %d × %s (%s, fallback %v)", p.Choice.GPUs, p.Choice.Model, p.Choice.Standing, p.Choice.Fallback)
	if len(p.Choice.Tried) > 0 {
		fmt.Fprintf(w, "; passed over: %s", strings.Join(p.Choice.Tried, "; "))
	}
	fmt.Fprintf(w, "\nscore: %s\n", p.Score)
}

// publishDecisions sends training decisions to the decisions topic with an
// idempotent producer (the topic is created if kafka.create_topics is on).
func publishDecisions(ctx context.Context, c wire.Config, ds []schemas.TrainingDecision, dryRun bool) error {
	topic := c.Kafka.Topics().Name(schemas.TopicDecisions)
	if err := kafkax.EnsureTopics(ctx, c.Kafka, topic); err != nil {
		return err
	}
	signer, err := c.Signer(nil)
	if err != nil {
		return fmt.Errorf("training: %w", err)
	}
	kc := c.Kafka
	if signer != nil {
		kc.Interceptors = append(kc.Interceptors, signer.Interceptor(topic))
	}
	sc, err := kc.IdempotentProducer()
	if err != nil {
		return err
	}
	p, err := sarama.NewSyncProducer(c.Kafka.Brokers, sc)
	if err != nil {
		return fmt.Errorf("training: kafka producer for %v: %w", c.Kafka.Brokers, err)
	}
	defer p.Close()
	for _, d := range ds {
		d.DryRun = dryRun
		msg, err := kafkax.NewMessage(topic, c.Training.Source, d)
		if err != nil {
			return err
		}
		if _, _, err := p.SendMessage(msg); err != nil {
			return fmt.Errorf("training: publish decision %s to %s: %w", d.ID, topic, err)
		}
	}
	return nil
}

func newTrainingQueueCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "queue",
		Short: "List Kueue Workloads of the departments with each job's score terms and why it waits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			kc, err := kueueClient(c)
			if err != nil {
				return err
			}
			wls, err := kc.ListWorkloads(cmd.Context())
			if err != nil {
				return err
			}
			printQueue(cmd.OutOrStdout(), c.Training, wls, time.Now())
			return nil
		},
	}
}

func printQueue(w io.Writer, cfg scheduler.Config, wls []kueue.Workload, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tJOB\tDEPT\tGPUS\tFLAVOR\tPRIORITY\tSTATE\tSCORE TERMS\tWHY IT WAITS")
	for _, r := range wire.QueueRows(cfg, wls, now) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", r.Namespace, r.Job, nonEmptyStr(r.Department, "-"),
			r.GPUs, r.Flavor, r.Priority, r.State, nonEmptyStr(r.Terms, "-"), nonEmptyStr(r.Why, "-"))
	}
	tw.Flush()
}

func nonEmptyStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func newTrainingRefreshCmd(g *globals) *cobra.Command {
	var once, publish bool
	cmd := &cobra.Command{
		Use:   "refresh",
		Short: "Write each Workload's score as its priority, refreshed every kueue.refresh_interval",
		Long: `refresh is the score loop: every kueue.refresh_interval it writes each waiting
training Workload's current score (wait credit grows) as its spec.priority, gives
running borrowers the guard protects (younger than min_runtime, or kill budget
spent) a priority above every score so Kueue's reclaim passes them over, and
charges Kueue's pre-emptions to the kill budget. With pools.mixed_flavors, it
first sets those flavors' nominal GPU quota in every department's ClusterQueue
to the department's share of the GPUs on mixed-pool nodes not in handover, and
again whenever such a node changes. Each change is a training
decision, printed and, with --publish, sent to Kafka.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			kc, err := kueueClient(c)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if !once {
				reg := telemetry.NewRegistry()
				kc.Metrics = kueue.NewMetrics(reg)
				go func() {
					if err := telemetry.Serve(ctx, c.Telemetry.Listen, telemetry.Handler(reg, &telemetry.Readiness{}), kc.Log); err != nil {
						kc.Log.Error("telemetry", "err", err)
					}
				}()
			}
			t := time.NewTicker(c.Training.Kueue.RefreshInterval)
			defer t.Stop()
			// Node changes re-sync the mixed pool's quota between refreshes.
			nodes := make(chan struct{}, 1)
			if !once && len(c.Training.Pools.MixedFlavors) > 0 {
				go func() { _ = kc.WatchMixedNodes(ctx, nodes) }()
			}
			for {
				ds, err := kc.Refresh(ctx, time.Now())
				if err != nil {
					return err
				}
				for _, d := range ds {
					b, err := schemas.Marshal(d)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "decision %s\n", b)
				}
				if publish && len(ds) > 0 {
					if err := publishDecisions(ctx, c, ds, false); err != nil {
						return err
					}
				}
				if once {
					return nil
				}
				for tick := false; !tick; {
					select {
					case <-ctx.Done():
						return nil
					case <-t.C:
						tick = true
					case <-nodes:
						if _, _, err := kc.SyncQuota(ctx, time.Now()); err != nil {
							return err
						}
					}
				}
			}
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "one pass, then exit")
	cmd.Flags().BoolVar(&publish, "publish", false, "publish the decisions to the Kafka decisions topic")
	return cmd
}

func newTrainingSetupCmd(g *globals) *cobra.Command {
	var dryRun bool
	var cpu, mem string
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the Kueue objects the 'training' section implies (flavors, ClusterQueues, LocalQueues, priority class)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			objs := kueue.SetupObjects(c.Training, cpu, mem)
			if dryRun {
				for _, o := range objs {
					y, err := yaml.Marshal(o.Object)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "---\n%s", y)
				}
				return nil
			}
			kc, err := kueueClient(c)
			if err != nil {
				return err
			}
			return kc.Apply(cmd.Context(), objs)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the objects as YAML")
	cmd.Flags().StringVar(&cpu, "cpu-per-flavor", "1000", "CPU quota of each department per GPU flavor")
	cmd.Flags().StringVar(&mem, "memory-per-flavor", "4Ti", "memory quota of each department per GPU flavor")
	return cmd
}

func newTrainingBacktestCmd() *cobra.Command {
	o := backtest.DefaultOptions()
	var tracePath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backtest",
		Short: "Replay job streams shaped by the shared traces: ebbflow's scheduler vs FIFO with static quotas",
		Long: `backtest turns a cluster-occupancy curve (Philly's busy GPU nodes, the Azure VMs'
assigned memory) into a seeded job stream whose offered GPU demand follows it, and
runs ebbflow's scheduler (sizing, score, borrowing, fallback, guarded pre-emption),
FIFO with static quotas, and ebbflow with oracle sizing (a bound) on the same
simulated cluster in the same run. Without --trace it runs on every shared trace
that records allocations and names the others it skips. It reports GPU allocation
utilisation (used ÷ allocated GPU-time), the allocated and used shares of
capacity, mean and p95 wait, p95 wait of jobs within their department's quota,
and pre-emptions. Definitions and assumptions: docs/training.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var sr backtest.SharedReport
			if tracePath == "" {
				dir, err := trace.Dir()
				if err != nil {
					return fmt.Errorf("--trace not given and %w", err)
				}
				if sr, err = backtest.RunShared(dir, o); err != nil {
					return err
				}
			} else {
				c, format, err := backtest.ReadTrace(tracePath)
				if err != nil {
					return err
				}
				r, err := backtest.Run(c, o)
				if err != nil {
					return err
				}
				r.Trace, r.Format = filepath.Base(tracePath), format
				sr.Dir, sr.Reports = filepath.Dir(tracePath), []backtest.Report{r}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sr)
			}
			for i, r := range sr.Reports {
				if i > 0 {
					fmt.Fprintln(out)
				}
				printBacktest(out, r)
			}
			for _, s := range sr.Skipped {
				fmt.Fprintf(out, "\nskipped %s: %s\n", s.File, s.Skip)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tracePath, "trace", "", "one trace: time,active,total per minute (Philly) or timestamp,…,assigned_mem (Azure VMs); default: every shared trace")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.Uint64Var(&o.Gen.Seed, "seed", o.Gen.Seed, "generator seed")
	f.IntVar(&o.Gen.StartMinute, "start-minute", o.Gen.StartMinute, "first minute of the trace replayed")
	f.IntVar(&o.Gen.Minutes, "minutes", o.Gen.Minutes, "minutes replayed, warm-up included")
	f.IntVar(&o.WarmupMinutes, "warmup-minutes", o.WarmupMinutes, "minutes simulated before measuring")
	f.Float64Var(&o.Gen.LoadFactor, "load-factor", o.Gen.LoadFactor, "offered requested GPUs = busy fraction × capacity × this")
	f.IntVar(&o.Sched.KillBudget.Max, "kill-budget", o.Sched.KillBudget.Max, "pre-emptions allowed per kill-budget window")
	f.DurationVar(&o.Sched.MinRuntime, "min-runtime", o.Sched.MinRuntime, "minimum runtime before a borrower may be pre-empted")
	return cmd
}

func printBacktest(out io.Writer, r backtest.Report) {
	fmt.Fprintf(out, "%s (%s): %d jobs, %d GPUs, %d measured minutes\n", r.Trace, r.Format, r.Jobs, r.CapacityGPUs, r.MeasuredMinutes)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tUSED/ALLOC\tALLOC/CAP\tALLOC/CAP QUEUED\tUSED/CAP\tMEAN WAIT\tP95 WAIT\tP95 WAIT IN QUOTA\tNEVER STARTED\tPRE-EMPTIONS\tSIZED FROM HISTORY")
	for _, m := range []backtest.Metrics{r.Ebbflow, r.FIFO, r.Oracle} {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f min\t%.0f min\t%.0f min\t%d\t%d\t%d\n", m.Policy, m.AllocUtil, m.Allocated, m.AllocatedQueued, m.Used,
			m.MeanWaitMin, m.P95WaitMin, m.P95WaitWithinQuotaMin, m.NeverStarted, m.Preemptions, m.SizedFromHistory)
	}
	tw.Flush()
	met := "NOT MET"
	if r.TargetMet {
		met = "met"
	}
	fmt.Fprintf(out, "target %s: %s\n", met, r.TargetSummary)
}
