package mixing

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ebbflow/ebbflow/schemas"
)

// UtilisationSignal says which node signal measures a group's inference
// utilisation and what value means fully busy.
type UtilisationSignal struct {
	// Signal is a canonical node signal, e.g. gpu_util or cpu.
	Signal string `yaml:"signal"`
	// FullScale is the signal's value on a fully busy node (100 for
	// DCGM's gpu_util percent); 0 means the node's allocatable CPU cores
	// (for the cpu signal, a rate in cores).
	FullScale float64 `yaml:"full_scale"`
}

// Tracker holds what the decider loop knows: nodes and their pods (from
// informers) and the latest window and forecast of each node's utilisation
// signal (from Kafka). It is safe for concurrent use; Snapshot turns it
// into the decider's Input for one group.
type Tracker struct {
	cluster    string
	groupLabel string
	signals    func(group string) UtilisationSignal

	mu        sync.Mutex
	nodes     map[string]*corev1.Node
	pods      map[string]*corev1.Pod // namespace/name
	windows   map[string]schemas.Window
	forecasts map[string]schemas.Forecast
}

// NewTracker returns an empty tracker for one cluster.
func NewTracker(cluster, groupLabel string, signals func(group string) UtilisationSignal) *Tracker {
	return &Tracker{cluster: cluster, groupLabel: groupLabel, signals: signals,
		nodes: map[string]*corev1.Node{}, pods: map[string]*corev1.Pod{},
		windows: map[string]schemas.Window{}, forecasts: map[string]schemas.Forecast{}}
}

// SetNode records a node (nil obj with a name deletes it).
func (t *Tracker) SetNode(name string, n *corev1.Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n == nil {
		delete(t.nodes, name)
		return
	}
	t.nodes[name] = n
}

// SetPod records a pod (nil deletes it).
func (t *Tracker) SetPod(key string, p *corev1.Pod) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p == nil {
		delete(t.pods, key)
		return
	}
	t.pods[key] = p
}

// nodeOf returns the node name of a node entity of this cluster.
func (t *Tracker) nodeOf(entity string) (string, bool) {
	prefix := schemas.EntityNode + "/" + t.cluster + "/"
	if !strings.HasPrefix(entity, prefix) {
		return "", false
	}
	return strings.TrimPrefix(entity, prefix), true
}

// ObserveWindow keeps the newest window of a node entity (any signal; the
// group's signal is picked at Snapshot). It reports whether it was used.
func (t *Tracker) ObserveWindow(w schemas.Window) bool {
	node, ok := t.nodeOf(w.Entity)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := node + "|" + w.Signal
	if old, ok := t.windows[k]; ok && (old.EndMs > w.EndMs || (old.EndMs == w.EndMs && old.Revision > w.Revision)) {
		return false
	}
	t.windows[k] = w
	return true
}

// ObserveForecast keeps the newest forecast of a node entity.
func (t *Tracker) ObserveForecast(f schemas.Forecast) bool {
	node, ok := t.nodeOf(f.Entity)
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := node + "|" + f.Signal
	if old, ok := t.forecasts[k]; ok && old.OriginMs > f.OriginMs {
		return false
	}
	t.forecasts[k] = f
	return true
}

// Groups lists the groups of the nodes with a pool label, sorted.
func (t *Tracker) Groups() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	for _, n := range t.nodes {
		if st, ok, err := ReadNode(n.Labels, t.groupLabel); ok && err == nil && st.Group != "" {
			seen[st.Group] = true
		}
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// Snapshot builds the decider's input for one group at now: its nodes and
// their pods, the mean utilisation of its ready online nodes (windows no
// older than staleAfter), the mean of their forecasts per horizon, and
// the inference pods Pending because no node fits them. bad lists nodes
// whose labels could not be read.
func (t *Tracker) Snapshot(group string, now time.Time, staleAfter time.Duration) (in Input, bad []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sig := t.signals(group)
	in = Input{Group: group, Now: now}
	byNode := map[string]*Node{}
	var names []string
	for name, n := range t.nodes {
		st, ok, err := ReadNode(n.Labels, t.groupLabel)
		if err != nil {
			bad = append(bad, name+": "+err.Error())
			continue
		}
		if !ok || st.Group != group {
			continue
		}
		byNode[name] = &Node{Name: name, Pool: st.Pool, Handover: st.Handover}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, p := range t.pods {
		w := p.Labels[LabelWorkload]
		if w == WorkloadInference && p.Spec.NodeName == "" && unschedulable(p) {
			if pinnedToGroup(p, t.groupLabel, group) {
				in.PendingInference++
			}
			continue
		}
		n := byNode[p.Spec.NodeName]
		if n == nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		switch w {
		case WorkloadInference:
			n.InferencePods++
		case WorkloadTraining:
			tp := TrainingPod{Namespace: p.Namespace, Name: p.Name, Started: p.CreationTimestamp.Time}
			if p.Status.StartTime != nil {
				tp.Started = p.Status.StartTime.Time
			}
			if s := p.Annotations[AnnotationLastCheckpoint]; s != "" {
				if ts, err := time.Parse(time.RFC3339, s); err == nil {
					tp.LastCheckpoint = ts
				}
			}
			n.TrainingPods = append(n.TrainingPods, tp)
		}
	}
	var sum float64
	var count int
	horizon := map[int64][]float64{}
	for _, name := range names {
		n := byNode[name]
		in.Nodes = append(in.Nodes, *n)
		if n.Pool != PoolOnline || !n.Ready() {
			continue
		}
		full := sig.FullScale
		if full == 0 {
			full = float64(t.nodes[name].Status.Allocatable.Cpu().MilliValue()) / 1000
		}
		if full <= 0 {
			continue
		}
		w, ok := t.windows[name+"|"+sig.Signal]
		if !ok || now.Sub(w.EventTime()) > staleAfter {
			continue
		}
		sum += w.Value() / full
		count++
		if f, ok := t.forecasts[name+"|"+sig.Signal]; ok && now.Sub(f.EventTime()) <= staleAfter {
			for _, h := range f.Horizons {
				horizon[h.AtMs/60000] = append(horizon[h.AtMs/60000], h.Value/full)
			}
		}
	}
	if count > 0 {
		in.Utilisation = sum / float64(count)
	} else {
		in.Unmeasured = true
	}
	var mins []int64
	for m := range horizon {
		mins = append(mins, m)
	}
	sort.Slice(mins, func(i, j int) bool { return mins[i] < mins[j] })
	for _, m := range mins {
		vs := horizon[m]
		if len(vs) < count { // nodes without this horizon count at their current value
			continue
		}
		var s float64
		for _, v := range vs {
			s += v
		}
		in.Forecast = append(in.Forecast, Point{At: time.UnixMilli(m * 60000).UTC(), Utilisation: math.Max(s/float64(len(vs)), 0)})
	}
	return in, bad
}

// unschedulable reports a pod the scheduler could not place.
func unschedulable(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodPending {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// pinnedToGroup reports whether a pod asks for the group through a node
// selector on the group label (an inference workload's placement).
func pinnedToGroup(p *corev1.Pod, groupLabel, group string) bool {
	return p.Spec.NodeSelector[groupLabel] == group
}
