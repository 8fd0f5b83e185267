package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
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
			spec, err := scheduler.Parse(f, c.Training)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			now := time.Now().UTC()
			in := scheduler.PlanInput{Now: now, DeptUtil: -1}
			dept, _ := c.Training.Department(spec.Department)
			if in.Runs, err = readRuns(ctx, c, dept, spec.Family, now); err != nil {
				return err
			}
			in.DeptUtil = deptUtil(ctx, c, dept, now)
			var kc *kueue.Client
			if !dryRun {
				if kc, err = kueueClient(c); err != nil {
					return err
				}
				u, err := kc.ReadUsage(ctx)
				if err != nil {
					return err
				}
				in.Used, in.Free = u.Used[spec.Department], u.Free
			}
			plan, err := scheduler.PlanSubmission(c.Training, cluster(c), spec, in)
			if err != nil {
				return err
			}
			job, err := kueue.RenderJob(c.Training, spec, plan, now)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printPlan(out, spec, plan)
			if dryRun {
				y, err := yaml.Marshal(job)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "---\n%s", y)
			} else {
				if _, err := kc.Submit(ctx, job); err != nil {
					return err
				}
				fmt.Fprintf(out, "created job %s/%s (Kueue queue %s)\n", job.Namespace, job.Name, job.Labels[kueue.LabelQueueName])
			}
			for _, d := range plan.Decisions {
				d.DryRun = dryRun
				b, err := schemas.Marshal(d)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "decision %s\n", b)
			}
			if publish {
				return publishDecisions(ctx, c, plan.Decisions, dryRun)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the sizing, score, decisions and Job; create nothing")
	cmd.Flags().BoolVar(&publish, "publish", false, "publish the decisions to the Kafka decisions topic")
	return cmd
}

func cluster(c wire.Config) string {
	if c.Training.Cluster != "" {
		return c.Training.Cluster
	}
	return c.Kubernetes.Cluster
}

func readRuns(ctx context.Context, c wire.Config, dept scheduler.Department, family string, now time.Time) ([]scheduler.RunStats, error) {
	fsys, err := history.Open(ctx, c.History)
	if err != nil {
		return nil, fmt.Errorf("training: history: %w", err)
	}
	defer history.Close(fsys)
	return scheduler.ReadFamilyRuns(ctx, fsys, c.History.Root, c.Training.Sizing,
		scheduler.FamilyRunsQuery{Cluster: cluster(c), Namespace: dept.Ns(), Family: family, Now: now})
}

// deptUtil reads the department's recent GPU utilisation from the history;
// −1 (unknown, no penalty) when it cannot.
func deptUtil(ctx context.Context, c wire.Config, dept scheduler.Department, now time.Time) float64 {
	if c.Training.Score.UtilWindow <= 0 {
		return -1
	}
	fsys, err := history.Open(ctx, c.History)
	if err != nil {
		return -1
	}
	defer history.Close(fsys)
	u, err := scheduler.ReadDeptUtil(ctx, fsys, c.History.Root, c.Training.Sizing, cluster(c), dept.Ns(), c.Training.Score.UtilWindow, now)
	if err != nil {
		return -1
	}
	return u
}

func kueueClient(c wire.Config) (*kueue.Client, error) {
	rc, err := c.Kubernetes.RESTConfig()
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: dynamic client for %s: %w", rc.Host, err)
	}
	cs, err := c.Kubernetes.Clientset()
	if err != nil {
		return nil, err
	}
	log := telemetry.NewLogger(c.Telemetry, nil).With("component", "training")
	kc, err := kueue.NewClient(dyn, cs, c.Training, cluster(c), log)
	if err != nil {
		return nil, err
	}
	kc.DeptUtil = func(ctx context.Context, d scheduler.Department) float64 { return deptUtil(ctx, c, d, time.Now()) }
	return kc, nil
}

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
	for _, wl := range wls {
		state := "waiting"
		switch {
		case wl.Finished():
			state = "finished"
		case wl.Admitted():
			state = "admitted"
		}
		terms := "-"
		if d, ok := cfg.Department(wl.Department); ok && !wl.Admitted() {
			// The terms as the refresh loop computes them now.
			st := scheduler.Standing(d, nil, wl.Model, wl.GPUs)
			if wl.Score != nil {
				st = scheduler.QuotaStanding(wl.Score.Standing)
			}
			t := scheduler.Score(cfg.Score, scheduler.ScoreInput{Standing: st, Waited: now.Sub(wl.Submitted), DeptUtil: -1})
			if wl.Score != nil {
				t.UtilPenalty, t.DeptUtil = wl.Score.UtilPenalty, wl.Score.DeptUtil
				t.Total = t.Base + t.WaitCredit - t.UtilPenalty
			}
			terms = t.String()
		}
		flavor := wl.Flavor
		if flavor == "" {
			flavor = wl.Model + "?"
		}
		why := wl.WaitReason()
		if why == "" {
			why = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", wl.Namespace, nonEmptyStr(wl.Job, wl.Name), nonEmptyStr(wl.Department, "-"),
			wl.GPUs, flavor, wl.Priority, state, terms, why)
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
	var trace string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backtest",
		Short: "Replay a Philly-shaped job stream: ebbflow's scheduler vs FIFO with static quotas",
		Long: `backtest turns a busy-nodes-per-minute curve (the Philly trace) into a seeded job
stream whose offered GPU demand follows it, and runs ebbflow's scheduler (sizing,
score, borrowing, fallback, guarded pre-emption) and FIFO with static quotas on
the same simulated cluster in the same run. It reports GPU allocation
utilisation (useful GPU-minutes ÷ capacity), mean and p95 wait, p95 wait of jobs
within their department's quota, and pre-emptions. Assumptions: docs/training.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if trace == "" {
				return errors.New("--trace: required (e.g. ../shared/traces/philly_node_sequence.csv)")
			}
			c, err := backtest.ReadCurve(trace)
			if err != nil {
				return err
			}
			r, err := backtest.Run(c, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			fmt.Fprintf(out, "%d jobs, %d GPUs, %d measured minutes\n", r.Jobs, r.CapacityGPUs, r.MeasuredMinutes)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "POLICY\tUTILISATION\tALLOCATED\tBUSY/ALLOC\tMEAN WAIT\tP95 WAIT\tP95 WAIT IN QUOTA\tNEVER STARTED\tPRE-EMPTIONS")
			for _, m := range []backtest.Metrics{r.Ebbflow, r.FIFO} {
				fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.1f min\t%.0f min\t%.0f min\t%d\t%d\n", m.Policy, m.Utilisation, m.Allocated, m.Efficiency,
					m.MeanWaitMin, m.P95WaitMin, m.P95WaitWithinQuotaMin, m.NeverStarted, m.Preemptions)
			}
			tw.Flush()
			met := "NOT MET"
			if r.TargetMet {
				met = "met"
			}
			fmt.Fprintf(out, "target %s: %s\n", met, r.TargetSummary)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&trace, "trace", "", "CSV with time,active,total per minute (the Philly node sequence)")
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
