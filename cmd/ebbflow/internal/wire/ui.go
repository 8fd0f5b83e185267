package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ebbflow/ebbflow/training/kueue"
	"github.com/ebbflow/ebbflow/training/scheduler"
	"github.com/ebbflow/ebbflow/ui"
)

// UI is the web UI: it reads the topics (and the alerts stream) and the
// Kubernetes API, and its forms submit training jobs and register model
// servers through the CLI's code (SubmitTraining, RegisterModelServer).
var UI = Component{Name: "ui", Run: func(ctx context.Context, e *Env) error {
	src := UISources(e)
	var serving atomic.Bool
	if e.Ready != nil {
		e.Ready.Add("ui", func() error {
			if !serving.Load() {
				return errors.New("ui: not serving yet")
			}
			return nil
		})
	}
	return ui.Run(ctx, e.Cfg.UI, ui.Deps{Kafka: e.Cfg.Kafka, JetStream: e.JetStream, Sources: src, Log: e.Log,
		Registry: e.Reg, Listener: e.UIListener, Ready: func(string) { serving.Store(true) }})
}}

// UISources wires the UI's reads and forms from an Env: nodes from the
// Env's Kubernetes client; the training queue from Kueue when the
// configuration reaches a real API server (not in dev, whose cluster is
// simulated without Kueue); the forms through SubmitTraining and
// RegisterModelServer with the process's configuration.
func UISources(e *Env) ui.Sources {
	cfg := e.Cfg
	src := ui.Sources{GroupLabel: cfg.Mixing.GroupLabel}
	if e.Kube != nil {
		src.Kube, src.KubeErr = e.Kube()
	}
	if e.Clock != nil {
		src.QueueErr = fmt.Errorf("the simulated cluster of ebbflow dev runs no Kueue; training decisions on the topic are listed below")
	} else if kc, err := KueueClient(cfg); err != nil {
		src.QueueErr = err
	} else {
		src.Queue = func(ctx context.Context) ([]ui.QueueJob, error) {
			wls, err := kc.ListWorkloads(ctx)
			if err != nil {
				return nil, err
			}
			return QueueRows(cfg.Training, wls, time.Now()), nil
		}
	}
	src.SubmitTraining = func(ctx context.Context, doc []byte, dryRun bool) (ui.FormResult, error) {
		sub, err := SubmitTraining(ctx, cfg, bytes.NewReader(doc), dryRun)
		if err != nil {
			return ui.FormResult{}, err
		}
		r := ui.FormResult{Summary: fmt.Sprintf("planned job %s/%s: %d × %s (%s)", sub.Plan.Namespace, sub.Plan.JobName,
			sub.Plan.Choice.GPUs, sub.Plan.Choice.Model, sub.Plan.Choice.Standing)}
		if sub.Created {
			r.Summary = fmt.Sprintf("created job %s/%s (Kueue queue %s)", sub.Job.Namespace, sub.Job.Name, sub.Job.Labels[kueue.LabelQueueName])
		}
		r.Lines = append(r.Lines, "placement: "+sub.Plan.Placement.Reason, "sizing: "+sub.Plan.Sizing.Formula,
			"score: "+sub.Plan.Score.String())
		for _, d := range sub.Decisions {
			r.Lines = append(r.Lines, fmt.Sprintf("decision %s %s: %s", d.Action, d.ID, d.Reason.Summary))
		}
		return r, nil
	}
	src.RegisterModel = func(ctx context.Context, doc []byte, validateOnly bool) (ui.FormResult, error) {
		if validateOnly {
			s, err := ValidateServingSpec(cfg, doc)
			if err != nil {
				return ui.FormResult{}, err
			}
			return ui.FormResult{Summary: fmt.Sprintf("valid: %s v%d on %s, %s %s", s.Name, s.Version, s.Server, s.Device, s.Precision.Mode)}, nil
		}
		s, p, err := RegisterModelServer(ctx, cfg, doc)
		if err != nil {
			return ui.FormResult{}, err
		}
		return ui.FormResult{Summary: fmt.Sprintf("registered %s v%d in the model store", s.Name, s.Version),
			Lines: []string{"written to " + p, "the servers decider launches or updates it at its next poll (servers.poll_interval)"}}, nil
	}
	return src
}

// QueueRows turns Kueue Workloads into the queue's rows: state, the score
// terms as the refresh loop computes them now, and why each waits
// (`ebbflow training queue` prints the same rows).
func QueueRows(cfg scheduler.Config, wls []kueue.Workload, now time.Time) []ui.QueueJob {
	out := make([]ui.QueueJob, 0, len(wls))
	for _, wl := range wls {
		state := "waiting"
		switch {
		case wl.Finished():
			state = "finished"
		case wl.Admitted():
			state = "admitted"
		}
		terms := ""
		if d, ok := cfg.Department(wl.Department); ok && !wl.Admitted() {
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
		job := wl.Job
		if job == "" {
			job = wl.Name
		}
		out = append(out, ui.QueueJob{Namespace: wl.Namespace, Job: job, Department: wl.Department, GPUs: wl.GPUs,
			Flavor: flavor, Priority: wl.Priority, State: state, Terms: terms, Why: wl.WaitReason()})
	}
	return out
}
