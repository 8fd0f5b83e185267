package wire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/dynamic"

	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/kueue"
	"github.com/ebbflow/ebbflow/training/scheduler"
)

// The operations that change the cluster on a person's request, shared by
// the CLI (`ebbflow training submit`, `ebbflow inference validate`) and the
// web UI's forms, so both validate, size and create in exactly one way.

// TrainingCluster is the cluster name training decisions carry.
func TrainingCluster(c Config) string {
	if c.Training.Cluster != "" {
		return c.Training.Cluster
	}
	return c.Kubernetes.Cluster
}

// TrainingSubmission is what SubmitTraining planned and did.
type TrainingSubmission struct {
	Spec      scheduler.JobSpec
	Plan      scheduler.Plan
	Job       *batchv1.Job
	Created   bool // false on a dry run
	Decisions []schemas.TrainingDecision
}

// SubmitTraining parses and validates a job spec (scheduler.Parse: an
// error names the field and line), sizes it from the family's history,
// reads the ClusterQueues' usage (unless dryRun), plans, renders the Kueue
// Job and creates it (unless dryRun). The decisions carry DryRun.
func SubmitTraining(ctx context.Context, c Config, doc io.Reader, dryRun bool) (TrainingSubmission, error) {
	var s TrainingSubmission
	spec, err := scheduler.Parse(doc, c.Training)
	if err != nil {
		return s, err
	}
	s.Spec = spec
	now := time.Now().UTC()
	in := scheduler.PlanInput{Now: now, DeptUtil: -1}
	dept, _ := c.Training.Department(spec.Department)
	if in.Runs, err = readRuns(ctx, c, dept, spec.Family, now); err != nil {
		return s, err
	}
	in.DeptUtil = deptUtil(ctx, c, dept, now)
	var kc *kueue.Client
	if !dryRun {
		if kc, err = KueueClient(c); err != nil {
			return s, err
		}
		u, err := kc.ReadUsage(ctx)
		if err != nil {
			return s, err
		}
		in.Used, in.Free = u.Used[spec.Department], u.Free
	}
	if s.Plan, err = scheduler.PlanSubmission(c.Training, TrainingCluster(c), spec, in); err != nil {
		return s, err
	}
	if s.Job, err = kueue.RenderJob(c.Training, spec, s.Plan, now); err != nil {
		return s, err
	}
	if !dryRun {
		if _, err := kc.Submit(ctx, s.Job); err != nil {
			return s, err
		}
		s.Created = true
	}
	for _, d := range s.Plan.Decisions {
		d.DryRun = dryRun
		s.Decisions = append(s.Decisions, d)
	}
	return s, nil
}

func readRuns(ctx context.Context, c Config, dept scheduler.Department, family string, now time.Time) ([]scheduler.RunStats, error) {
	fsys, err := history.Open(ctx, c.History)
	if err != nil {
		return nil, fmt.Errorf("training: history: %w", err)
	}
	defer history.Close(fsys)
	return scheduler.ReadFamilyRuns(ctx, fsys, c.History.Root, c.Training.Sizing,
		scheduler.FamilyRunsQuery{Cluster: TrainingCluster(c), Namespace: dept.Ns(), Family: family, Now: now})
}

// deptUtil reads the department's recent GPU utilisation from the history;
// −1 (unknown, no penalty) when it cannot.
func deptUtil(ctx context.Context, c Config, dept scheduler.Department, now time.Time) float64 {
	if c.Training.Score.UtilWindow <= 0 {
		return -1
	}
	fsys, err := history.Open(ctx, c.History)
	if err != nil {
		return -1
	}
	defer history.Close(fsys)
	u, err := scheduler.ReadDeptUtil(ctx, fsys, c.History.Root, c.Training.Sizing, TrainingCluster(c), dept.Ns(), c.Training.Score.UtilWindow, now)
	if err != nil {
		return -1
	}
	return u
}

// KueueClient connects the Kueue binding to the configured cluster.
func KueueClient(c Config) (*kueue.Client, error) {
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
	kc, err := kueue.NewClient(dyn, cs, c.Training, TrainingCluster(c), log)
	if err != nil {
		return nil, err
	}
	kc.DeptUtil = func(ctx context.Context, d scheduler.Department) float64 { return deptUtil(ctx, c, d, time.Now()) }
	return kc, nil
}

// ValidateServingSpec parses a model serving spec and checks it against
// the servers section (`ebbflow inference validate`); a validation error
// joins one error per broken rule, each naming its field.
func ValidateServingSpec(c Config, doc []byte) (servers.Spec, error) {
	s, err := servers.ParseBytes(doc)
	if err != nil {
		return s, err
	}
	return s, s.Validate(c.Servers)
}

// RegisterModelServer validates a serving spec (ValidateServingSpec) and
// writes it into the model store (servers.store_dir on the history
// backend) as <name>.yaml, under a temporary name first so the servers
// decider (`ebbflow inference run`) never reads half a file; it returns
// the path written. The decider launches (or updates) the model server.
func RegisterModelServer(ctx context.Context, c Config, doc []byte) (servers.Spec, string, error) {
	s, err := ValidateServingSpec(c, doc)
	if err != nil {
		return s, "", err
	}
	fsys, err := history.Open(ctx, c.History)
	if err != nil {
		return s, "", fmt.Errorf("model store: %w", err)
	}
	defer history.Close(fsys)
	if err := fsys.MkdirAll(c.Servers.StoreDir); err != nil {
		return s, "", fmt.Errorf("model store %s: %w", c.Servers.StoreDir, err)
	}
	dst := path.Join(c.Servers.StoreDir, s.Name+".yaml")
	tmp := history.TempName(c.Servers.StoreDir, s.Name+".yaml")
	w, err := fsys.Create(tmp)
	if err != nil {
		return s, "", fmt.Errorf("model store: %w", err)
	}
	if _, err := io.Copy(w, bytes.NewReader(doc)); err != nil {
		w.Close()
		return s, "", fmt.Errorf("model store: write %s: %w", tmp, err)
	}
	if err := w.Close(); err != nil {
		return s, "", fmt.Errorf("model store: write %s: %w", tmp, err)
	}
	if _, err := fsys.Stat(dst); err == nil {
		if err := fsys.Remove(dst); err != nil {
			return s, "", fmt.Errorf("model store: replace %s: %w", dst, err)
		}
	}
	if err := fsys.Rename(tmp, dst); err != nil {
		return s, "", fmt.Errorf("model store: %w", err)
	}
	return s, dst, nil
}
