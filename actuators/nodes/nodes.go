package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// Annotations the actuator keeps on a node during a handover.
const (
	// AnnotationCordoned is "true" when the handover cordoned the node
	// (it was schedulable before), so finishing uncordons only those.
	AnnotationCordoned = "ebbflow.io/handover-cordoned"
	// AnnotationStarted is the RFC 3339 time the handover began.
	AnnotationStarted = "ebbflow.io/handover-started"
)

// Config bounds the node actuator.
type Config struct {
	// GroupLabel is the node group label (mixing.Config.GroupLabel).
	GroupLabel string
	// DrainGrace is the eviction grace period of training pods, for a
	// checkpoint. Inference pods keep their own grace period.
	DrainGrace time.Duration
	// MaxNodesPerDecision: flips beyond it in one decision are refused.
	MaxNodesPerDecision int
	// MaxTrainingEvictionsPerHour bounds training pods this actuator
	// evicts in any hour, whatever the decisions ask; 0 = no bound.
	MaxTrainingEvictionsPerHour int
	// Identity names the actuator in Events and actions.
	Identity string
	// Cluster names the cluster in the targets of reported actions.
	Cluster string
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{GroupLabel: mixing.LabelNodeGroup, DrainGrace: 2 * time.Minute, MaxNodesPerDecision: 4, MaxTrainingEvictionsPerHour: 4, Identity: "ebbflow-actuator"}
}

// Handler applies nodes decisions and finishes handovers. It is safe for
// concurrent use.
type Handler struct {
	kube  kubernetes.Interface
	cfg   Config
	clock actuators.Clock
	log   *slog.Logger
	m     *metrics

	mu        sync.Mutex
	evictions []time.Time
	report    func(context.Context, schemas.Action)
}

// SetReporter receives an action for each step Reconcile takes (pods
// evicted, handover finished), so the steps after a decision's own action
// reach the actions topic too. Call it before Run.
func (h *Handler) SetReporter(f func(context.Context, schemas.Action)) { h.report = f }

type metrics struct {
	steps      *prometheus.CounterVec
	evictions  *prometheus.CounterVec
	inHandover prometheus.Gauge
}

// New returns the handler. clock nil is the wall clock, log nil the
// default logger, reg nil a private registry.
func New(kube kubernetes.Interface, cfg Config, clock actuators.Clock, log *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if clock == nil {
		clock = actuators.WallClock{}
	}
	if log == nil {
		log = slog.Default()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_actuate_nodes_handover_steps_total",
			Help: "Handover steps taken on nodes, by direction and step (started, cancelled, finished, skipped, dry_run)."}, []string{"direction", "step"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_actuate_nodes_evictions_total",
			Help: "Pod evictions asked for during handovers, by workload and result (evicted, gone, pdb_blocked, budget_spent, error)."}, []string{"workload", "result"}),
		inHandover: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_actuate_nodes_in_handover",
			Help: "Nodes in handover at the last reconcile pass."}),
	}
	for _, c := range []prometheus.Collector{m.steps, m.evictions, m.inHandover} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("actuators/nodes: register metrics: %w", err)
		}
	}
	if cfg.GroupLabel == "" {
		cfg.GroupLabel = mixing.LabelNodeGroup
	}
	return &Handler{kube: kube, cfg: cfg, clock: clock, log: log, m: m}, nil
}

// Register adds the handler to an actuator registry.
func (h *Handler) Register(r *actuators.Registry) {
	r.Register(schemas.NodesDecision{}.EventType(), h)
}

// Decode implements actuators.Handler.
func (h *Handler) Decode(body []byte) (actuators.Decision, error) {
	nd, err := schemas.Decode[schemas.NodesDecision](body)
	if err != nil {
		return actuators.Decision{}, err
	}
	// The schema takes any non-empty string; a name Kubernetes cannot
	// hold (or a path) is the decider's error, not a node to look up.
	for i, f := range nd.Nodes {
		if errs := validation.IsDNS1123Subdomain(f.Node); len(errs) > 0 {
			return actuators.Decision{}, &schemas.ValidationError{Type: nd.EventType(), Field: fmt.Sprintf("/nodes/%d/node", i),
				Reason: fmt.Sprintf("%q is not a Kubernetes node name: %s", f.Node, strings.Join(errs, "; "))}
		}
	}
	if nd.Target.Name != nd.Group {
		return actuators.Decision{}, &schemas.ValidationError{Type: nd.EventType(), Field: "/target/name",
			Reason: fmt.Sprintf("target %q is not the decision's group %q", nd.Target.Name, nd.Group)}
	}
	return actuators.Decision{Kind: nd.Kind, ID: nd.ID, Seq: nd.Seq, Target: nd.Target, AtMs: nd.AtMs,
		ExpiresMs: nd.ExpiresMs, DryRun: nd.DryRun, Event: nd}, nil
}

// Apply implements actuators.Handler: it starts (or cancels) the handover
// of each node of the decision, then advances each as far as it can go
// now. What remains (pods still terminating, PDBs, the eviction budget) is
// finished by Reconcile.
func (h *Handler) Apply(ctx context.Context, d actuators.Decision) (schemas.Action, error) {
	nd, ok := d.Event.(schemas.NodesDecision)
	if !ok {
		return schemas.Action{}, fmt.Errorf("nodes handler got %T", d.Event)
	}
	flips := nd.Nodes
	var notes []string
	if h.cfg.MaxNodesPerDecision > 0 && len(flips) > h.cfg.MaxNodesPerDecision {
		for _, f := range flips[h.cfg.MaxNodesPerDecision:] {
			notes = append(notes, fmt.Sprintf("%s: refused, over the actuator's %d nodes per decision", f.Node, h.cfg.MaxNodesPerDecision))
		}
		flips = flips[:h.cfg.MaxNodesPerDecision]
	}
	changed := false
	for _, f := range flips {
		note, did, err := h.begin(ctx, nd, f, d.DryRun)
		if err != nil {
			return schemas.Action{}, fmt.Errorf("node %s: %w", f.Node, err)
		}
		if did && !d.DryRun {
			changed = true
			more, err := h.advance(ctx, f.Node, false)
			if err != nil {
				return schemas.Action{}, fmt.Errorf("node %s: %w", f.Node, err)
			}
			note += "; " + more
		}
		notes = append(notes, f.Node+": "+note)
	}
	act := schemas.Action{Outcome: schemas.OutcomeSkipped, DryRun: d.DryRun, Reason: strings.Join(notes, " | ")}
	switch {
	case d.DryRun:
		act.Reason = "dry run: " + act.Reason
	case changed:
		act.Outcome = schemas.OutcomeApplied
	case allDuplicates(notes):
		act.Reason = "duplicate: " + act.Reason
	}
	return act, nil
}

func allDuplicates(notes []string) bool {
	for _, n := range notes {
		if !strings.Contains(n, "duplicate") {
			return false
		}
	}
	return len(notes) > 0
}

// begin checks one node against the decision and starts or cancels its
// handover. did reports a change to the node (or, in dry run, one that
// would have been made). A conflict (another writer changed the node
// since it was read: the TTL controller, kubectl) is retried on a fresh
// read.
func (h *Handler) begin(ctx context.Context, nd schemas.NodesDecision, f schemas.NodeFlip, dryRun bool) (note string, did bool, err error) {
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var e error
		note, did, e = h.beginOnce(ctx, nd, f, dryRun)
		return e
	})
	return note, did, err
}

func (h *Handler) beginOnce(ctx context.Context, nd schemas.NodesDecision, f schemas.NodeFlip, dryRun bool) (note string, did bool, err error) {
	node, err := h.kube.CoreV1().Nodes().Get(ctx, f.Node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		h.m.steps.WithLabelValues(nd.Direction, "skipped").Inc()
		return "skipped: node not found", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get: %w", err)
	}
	st, managed, err := mixing.ReadNode(node.Labels, h.cfg.GroupLabel)
	target := mixing.Pool(f.To)
	switch {
	case err != nil:
		return "skipped: " + err.Error(), false, nil
	case !managed:
		return fmt.Sprintf("skipped: no %s label, not managed", mixing.LabelPool), false, nil
	case st.Group != nd.Group:
		return fmt.Sprintf("skipped: in group %q, the decision is for %q", st.Group, nd.Group), false, nil
	case st.Pool == mixing.PoolFixed:
		return "skipped: fixed nodes never change pool", false, nil
	case node.Annotations[mixing.AnnotationDecisionID] == nd.ID:
		return "duplicate: decision " + nd.ID + " already applied to this node", false, nil
	case recordedSeq(node.Annotations) >= nd.Seq:
		return fmt.Sprintf("stale: seq %d is not above the node's last applied seq %d (%s)", nd.Seq, recordedSeq(node.Annotations), node.Annotations[mixing.AnnotationDecisionID]), false, nil
	case target != mixing.PoolOnline && target != mixing.PoolOffline:
		return fmt.Sprintf("skipped: %q is not a pool a node can move to", f.To), false, nil
	case st.Handover == mixing.HandoverTo(target):
		return "handover to " + string(target) + " already in progress", true, nil
	case st.Pool == target && st.Handover == mixing.HandoverNone:
		return "skipped: already in pool " + string(target), false, nil
	}
	now := h.clock.Now()
	if st.Pool == target { // on its way to the other pool: cancel
		if dryRun {
			h.m.steps.WithLabelValues(nd.Direction, "dry_run").Inc()
			return "would cancel the handover to " + string(st.Handover.Target()), true, nil
		}
		if err := h.finish(ctx, node, target, nd.ID, nd.Seq); err != nil {
			return "", false, err
		}
		h.m.steps.WithLabelValues(nd.Direction, "cancelled").Inc()
		h.event(ctx, node.Name, nd.ID, "HandoverCancelled", fmt.Sprintf("decision %s: handover to %s cancelled, back in %s: %s", nd.ID, st.Handover.Target(), target, f.Why))
		return "cancelled the handover, stays " + string(target), true, nil
	}
	if dryRun {
		h.m.steps.WithLabelValues(nd.Direction, "dry_run").Inc()
		return fmt.Sprintf("would cordon, taint and hand over %s → %s", st.Pool, target), true, nil
	}
	taints := append(withoutOurTaint(node.Spec.Taints), corev1.Taint{Key: mixing.TaintHandover, Value: string(mixing.HandoverTo(target)), Effect: corev1.TaintEffectNoSchedule, TimeAdded: &metav1.Time{Time: now}})
	ann := map[string]any{mixing.AnnotationDecisionID: nd.ID, mixing.AnnotationDecisionSeq: strconv.FormatInt(nd.Seq, 10), AnnotationStarted: now.UTC().Format(time.RFC3339)}
	if !node.Spec.Unschedulable {
		ann[AnnotationCordoned] = "true"
	}
	if err := h.patch(ctx, node, map[string]any{
		"metadata": map[string]any{"resourceVersion": node.ResourceVersion,
			"labels":      map[string]any{mixing.LabelHandover: string(mixing.HandoverTo(target))},
			"annotations": ann},
		"spec": map[string]any{"unschedulable": true, "taints": taints},
	}); err != nil {
		return "", false, err
	}
	h.m.steps.WithLabelValues(nd.Direction, "started").Inc()
	h.event(ctx, node.Name, nd.ID, "HandoverStarted", fmt.Sprintf("decision %s: cordoned and tainted, %s → %s: %s", nd.ID, st.Pool, target, f.Why))
	return fmt.Sprintf("handover %s → %s started", st.Pool, target), true, nil
}

// recordedSeq is the sequence of the last nodes decision applied to the
// node (0 when none).
func recordedSeq(ann map[string]string) int64 {
	n, _ := strconv.ParseInt(ann[mixing.AnnotationDecisionSeq], 10, 64)
	return n
}

func withoutOurTaint(ts []corev1.Taint) []corev1.Taint {
	out := []corev1.Taint{}
	for _, t := range ts {
		if t.Key != mixing.TaintHandover {
			out = append(out, t)
		}
	}
	return out
}

// patch sends a JSON merge patch; a resourceVersion in it makes the API
// server refuse (409, retried by the framework) if the node changed since
// it was read, so the taint list is never lost to a concurrent writer.
func (h *Handler) patch(ctx context.Context, node *corev1.Node, p map[string]any) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := h.kube.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: "ebbflow-actuator"}); err != nil {
		return fmt.Errorf("patch node %s: %w", node.Name, err)
	}
	return nil
}

// finish moves a node into its pool and ends the handover: pool label,
// no handover label or taint, uncordoned if the handover cordoned it.
func (h *Handler) finish(ctx context.Context, node *corev1.Node, pool mixing.Pool, decisionID string, seq int64) error {
	ann := map[string]any{AnnotationCordoned: nil, AnnotationStarted: nil}
	if decisionID != "" {
		ann[mixing.AnnotationDecisionID] = decisionID
		ann[mixing.AnnotationDecisionSeq] = strconv.FormatInt(seq, 10)
	}
	spec := map[string]any{"taints": withoutOurTaint(node.Spec.Taints)}
	if node.Annotations[AnnotationCordoned] == "true" {
		spec["unschedulable"] = false
	}
	return h.patch(ctx, node, map[string]any{
		"metadata": map[string]any{"resourceVersion": node.ResourceVersion,
			"labels":      map[string]any{mixing.LabelPool: string(pool), mixing.LabelHandover: nil},
			"annotations": ann},
		"spec": spec,
	})
}

// advance evicts what is left of the old pool's pods on a node in
// handover and finishes the handover when none is left; a conflict on the
// final patch is retried on a fresh read.
func (h *Handler) advance(ctx context.Context, name string, report bool) (note string, err error) {
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var e error
		note, e = h.advanceOnce(ctx, name, report)
		return e
	})
	return note, err
}

func (h *Handler) advanceOnce(ctx context.Context, name string, report bool) (string, error) {
	node, err := h.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("get: %w", err)
	}
	st, managed, err := mixing.ReadNode(node.Labels, h.cfg.GroupLabel)
	if err != nil || !managed || st.Handover == mixing.HandoverNone {
		return "no handover", err
	}
	old := mixing.WorkloadInference
	if st.Pool == mixing.PoolOffline {
		old = mixing.WorkloadTraining
	}
	pods, err := h.kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String(),
		LabelSelector: mixing.LabelWorkload + "=" + old,
	})
	if err != nil {
		return "", fmt.Errorf("list pods on %s: %w", name, err)
	}
	left, evicted, blocked, budget := 0, 0, 0, 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != name || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		left++
		if p.DeletionTimestamp != nil {
			continue
		}
		switch res := h.evict(ctx, p, old); res {
		case "evicted":
			evicted++
			h.event(ctx, name, "", "PodEvicted", fmt.Sprintf("evicted %s pod %s/%s for the handover to %s", old, p.Namespace, p.Name, st.Handover.Target()))
		case "gone":
			left--
		case "pdb_blocked":
			blocked++
			h.event(ctx, name, "", "EvictionBlocked", fmt.Sprintf("PodDisruptionBudget blocks evicting %s/%s; retried on the next pass", p.Namespace, p.Name))
		case "budget_spent":
			budget++
		default:
			return "", fmt.Errorf("evict %s/%s: %s", p.Namespace, p.Name, res)
		}
	}
	if left == 0 {
		if err := h.finish(ctx, node, st.Handover.Target(), "", 0); err != nil {
			return "", err
		}
		h.m.steps.WithLabelValues(string(st.Handover), "finished").Inc()
		h.event(ctx, name, "", "HandoverFinished", fmt.Sprintf("no %s pod left: now in pool %s, untainted", old, st.Handover.Target()))
		if report {
			h.reportStep(ctx, node, st, "finished", fmt.Sprintf("node %s: no %s pod left, handover finished: now in pool %s", name, old, st.Handover.Target()))
		}
		return "finished: now " + string(st.Handover.Target()), nil
	}
	if report && evicted > 0 {
		h.reportStep(ctx, node, st, "evicted", fmt.Sprintf("node %s: evicted %d %s pod(s) for the handover to %s", name, evicted, old, st.Handover.Target()))
	}
	out := fmt.Sprintf("%d %s pod(s) left: %d evicted now", left, old, evicted)
	if blocked > 0 {
		out += fmt.Sprintf(", %d blocked by a PodDisruptionBudget (retry later)", blocked)
	}
	if budget > 0 {
		out += fmt.Sprintf(", %d wait for the training eviction budget (%d per hour)", budget, h.cfg.MaxTrainingEvictionsPerHour)
	}
	return out, nil
}

// reportStep hands the reporter an action for one reconcile step, tied to
// the decision recorded on the node.
func (h *Handler) reportStep(ctx context.Context, node *corev1.Node, st mixing.NodeState, step, reason string) {
	if h.report == nil {
		return
	}
	id := node.Annotations[mixing.AnnotationDecisionID]
	now := h.clock.Now()
	h.report(ctx, schemas.Action{
		ID: fmt.Sprintf("%s/%s/%s/%d", id, node.Name, step, now.UnixMilli()), DecisionID: id, DecisionKind: schemas.DecisionNodes,
		Seq: recordedSeq(node.Annotations), Target: schemas.NodeGroupTarget(h.cfg.Cluster, st.Group),
		Outcome: schemas.OutcomeApplied, Reason: reason, AtMs: now.UnixMilli(), Attempts: 1, Actuator: h.cfg.Identity,
	})
}

// evict asks the Eviction API to evict a pod: evicted, gone, pdb_blocked,
// budget_spent, or an error text.
func (h *Handler) evict(ctx context.Context, p *corev1.Pod, workload string) string {
	if workload == mixing.WorkloadTraining && !h.takeBudget() {
		h.m.evictions.WithLabelValues(workload, "budget_spent").Inc()
		return "budget_spent"
	}
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
	if workload == mixing.WorkloadTraining {
		g := int64(h.cfg.DrainGrace / time.Second)
		ev.DeleteOptions = &metav1.DeleteOptions{GracePeriodSeconds: &g}
	}
	err := h.postEviction(ctx, ev)
	res := "evicted"
	switch {
	case err == nil:
	case apierrors.IsNotFound(err):
		res = "gone"
	case apierrors.IsTooManyRequests(err):
		res = "pdb_blocked"
	default:
		res = err.Error()
	}
	if workload == mixing.WorkloadTraining && res != "evicted" {
		h.returnBudget()
	}
	switch res {
	case "evicted", "gone", "pdb_blocked":
		h.m.evictions.WithLabelValues(workload, res).Inc()
	default:
		h.m.evictions.WithLabelValues(workload, "error").Inc()
	}
	return res
}

// postEviction posts the eviction without client-go's retries of a 429:
// a PodDisruptionBudget's refusal comes back at once (client-go would wait
// out Retry-After ten times, minutes in all) and the next pass retries.
func (h *Handler) postEviction(ctx context.Context, ev *policyv1.Eviction) error {
	rc, ok := h.kube.PolicyV1().RESTClient().(*rest.RESTClient)
	if !ok || rc == nil { // a fake clientset in unit tests
		return h.kube.PolicyV1().Evictions(ev.Namespace).Evict(ctx, ev)
	}
	return rc.Post().AbsPath("/api/v1").Namespace(ev.Namespace).Resource("pods").Name(ev.Name).
		SubResource("eviction").Body(ev).MaxRetries(0).Do(ctx).Error()
}

func (h *Handler) takeBudget() bool {
	if h.cfg.MaxTrainingEvictionsPerHour <= 0 {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	kept := h.evictions[:0]
	for _, t := range h.evictions {
		if now.Sub(t) < time.Hour {
			kept = append(kept, t)
		}
	}
	h.evictions = kept
	if len(h.evictions) >= h.cfg.MaxTrainingEvictionsPerHour {
		return false
	}
	h.evictions = append(h.evictions, now)
	return true
}

func (h *Handler) returnBudget() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.evictions); n > 0 {
		h.evictions = h.evictions[:n-1]
	}
}

// Reconcile makes one pass over every node in handover (label
// ebbflow.io/handover set): it evicts what is left and finishes those
// whose old pods are gone. It is how a restarted actuator resumes.
func (h *Handler) Reconcile(ctx context.Context) (map[string]string, error) {
	list, err := h.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: mixing.LabelHandover})
	if err != nil {
		return nil, fmt.Errorf("list nodes in handover: %w", err)
	}
	h.m.inHandover.Set(float64(len(list.Items)))
	out := map[string]string{}
	var errs []error
	for _, n := range list.Items {
		note, err := h.advance(ctx, n.Name, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
			continue
		}
		out[n.Name] = note
	}
	return out, errors.Join(errs...)
}

// Run reconciles every interval until ctx ends; errors are logged and
// retried on the next pass. Run it only on the leader.
func (h *Handler) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		notes, err := h.Reconcile(ctx)
		for n, note := range notes {
			h.log.Info("handover", "node", n, "state", note)
		}
		if err != nil {
			h.log.Warn("handover reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// event records an events.k8s.io Event on the node, best effort, named
// from its content so a repeated step does not add a second one.
func (h *Handler) event(ctx context.Context, node, decisionID, reason, note string) {
	if len(note) > 1000 {
		note = note[:1000]
	}
	f := fnv.New64a()
	fmt.Fprint(f, node, decisionID, reason, note)
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.ebbflow.%016x", node, f.Sum64()), Namespace: metav1.NamespaceDefault},
		EventTime:           metav1.NewMicroTime(h.clock.Now()),
		ReportingController: "ebbflow.io/actuator",
		ReportingInstance:   h.cfg.Identity,
		Action:              "Handover",
		Reason:              reason,
		Type:                corev1.EventTypeNormal,
		Note:                note,
		Regarding:           corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node},
	}
	if reason == "EvictionBlocked" {
		ev.Type = corev1.EventTypeWarning
	}
	if _, err := h.kube.EventsV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		h.log.Warn("record node event", "node", node, "reason", reason, "err", err)
	}
}
