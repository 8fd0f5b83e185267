package sim

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Labels the node-mixing simulation puts on nodes and pods. They are the
// values training/mixing reads (LabelNodeGroup, LabelPool, LabelHandover,
// LabelWorkload); internal/ may not import that package, so they are
// repeated here.
const (
	LabelNodeGroup = "ebbflow.io/node-group"
	LabelPool      = "ebbflow.io/pool"
	LabelHandover  = "ebbflow.io/handover"
	LabelWorkload  = "ebbflow.io/workload"
	// TrainingNamespace holds the simulated training pods.
	TrainingNamespace = "training"
)

// TrainingJob is one job of the training stream: it arrives Arrive after
// the start, takes Nodes whole offline nodes and runs for Run.
type TrainingJob struct {
	ID     int
	Arrive time.Duration
	Nodes  int
	Run    time.Duration
	// Family, when set, names the job's family: its pods are then named
	// <family>-<id>-<i>, so ingest attributes them to the workload
	// <family>-<id> (one run of the family, as ebbflow's training sizing
	// reads runs), and each node's DCGM exporter reports the job's GPUs
	// with the pod's namespace, pod and container, at GPUUtil (0–1) and
	// GPUMemMiB of framebuffer per GPU. Without it the pods are
	// job-<id>-<i> and their GPUs report 100 % with no pod.
	Family    string
	GPUUtil   float64
	GPUMemMiB float64
}

// Mixing makes the simulated nodes one node group with pools: the first
// Offline nodes start in the offline pool (training), the rest online
// (inference). Inference pods go only to ready online nodes; the jobs run
// on ready offline nodes, one pod per node, and an evicted job is killed.
type Mixing struct {
	Group   string
	Offline int
	Jobs    []TrainingJob
}

// MixingStats are the simulation's own mixing figures.
type MixingStats struct {
	// Submitted, Started, Completed and Killed count training jobs.
	Submitted, Started, Completed, Killed int
	// PendingMinutes counts whole simulated minutes in which at least
	// one inference pod had no node.
	PendingMinutes int
	// KilledAt are the times jobs were killed.
	KilledAt []time.Time
}

type nodeView struct {
	pool     string
	handover bool
	cordoned bool
}

type runningJob struct {
	job   TrainingJob
	start time.Time
	pods  []string // pod names, one per node
	nodes []string
}

// mixState is the simulation's mixing state; guarded by Sim.mu except
// evicted, which the eviction reactor fills under its own lock.
type mixState struct {
	cfg      Mixing
	view     map[string]nodeView
	next     int // next job of cfg.Jobs to arrive
	queue    []TrainingJob
	running  map[int]*runningJob
	podJob   map[string]int // training pod name → job id
	trainOn  map[string]int // node → job id
	stats    MixingStats
	pendMin  time.Time // minute being judged for Pending
	pendSeen bool

	evMu    sync.Mutex
	evicted []string // ns/name
}

// installEvictionReactor makes the Eviction API delete the pod, as the
// API server does when no PodDisruptionBudget blocks it, and remembers it
// so the next Step sees it gone.
func installEvictionReactor(cs *fake.Clientset, m *mixState) {
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ca, ok := a.(k8stesting.CreateAction)
		if !ok {
			return true, nil, fmt.Errorf("sim: eviction: unexpected action %T", a)
		}
		ev, ok := ca.GetObject().(*policyv1.Eviction)
		if !ok {
			return true, nil, fmt.Errorf("sim: eviction: object is %T", ca.GetObject())
		}
		ns := ev.Namespace
		if ns == "" {
			ns = a.GetNamespace()
		}
		if err := cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), ns, ev.Name); err != nil {
			return true, nil, err
		}
		m.evMu.Lock()
		m.evicted = append(m.evicted, ns+"/"+ev.Name)
		m.evMu.Unlock()
		return true, ev, nil
	})
}

// poolLabels returns the labels of the i-th node in mixing mode.
func (m *mixState) poolLabels(i int) map[string]string {
	pool := "online"
	if i < m.cfg.Offline {
		pool = "offline"
	}
	return map[string]string{LabelNodeGroup: m.cfg.Group, LabelPool: pool}
}

// refresh reads the nodes' pools back from the API server (the node
// actuator changes them) and takes in the pods evicted since the last step.
func (s *Sim) refreshMixing(ctx context.Context) error {
	m := s.mix
	list, err := s.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("sim: list nodes: %w", err)
	}
	for _, n := range list.Items {
		_, ho := n.Labels[LabelHandover]
		m.view[n.Name] = nodeView{pool: n.Labels[LabelPool], handover: ho, cordoned: n.Spec.Unschedulable}
	}
	m.evMu.Lock()
	ev := m.evicted
	m.evicted = nil
	m.evMu.Unlock()
	for _, key := range ev {
		if p, ok := s.pods[key]; ok && p.svc != nil {
			sv := p.svc
			for i, q := range sv.pods {
				if q == p {
					sv.pods = append(sv.pods[:i], sv.pods[i+1:]...)
					break
				}
			}
			if p.node != "" {
				s.gpusUsed[p.node]--
			}
			delete(s.pods, key)
			delete(s.scraped, key)
			continue
		}
		ns, name := TrainingNamespace, key[len(TrainingNamespace)+1:]
		id, ok := m.podJob[name]
		if !ok {
			continue
		}
		if err := s.endJob(ctx, ns, id); err != nil {
			return err
		}
		m.stats.Killed++
		m.stats.KilledAt = append(m.stats.KilledAt, s.now)
	}
	return nil
}

// canServe says whether a node takes inference pods now.
func (s *Sim) canServe(node string) bool {
	if s.mix == nil {
		return true
	}
	v := s.mix.view[node]
	return v.pool == "online" && !v.handover && !v.cordoned
}

// stepTraining submits the jobs that arrived, ends those that finished
// and starts queued ones on free offline nodes.
func (s *Sim) stepTraining(ctx context.Context) error {
	m := s.mix
	el := s.now.Sub(s.cfg.Start)
	for m.next < len(m.cfg.Jobs) && m.cfg.Jobs[m.next].Arrive <= el {
		m.queue = append(m.queue, m.cfg.Jobs[m.next])
		m.next++
		m.stats.Submitted++
	}
	ids := make([]int, 0, len(m.running))
	for id := range m.running {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		if r := m.running[id]; !s.now.Before(r.start.Add(r.job.Run)) {
			if err := s.endJob(ctx, TrainingNamespace, id); err != nil {
				return err
			}
			m.stats.Completed++
		}
	}
	var free []string
	for _, n := range s.nodes {
		v := m.view[n]
		if _, busy := m.trainOn[n]; !busy && v.pool == "offline" && !v.handover && !v.cordoned && s.gpusUsed[n] == 0 {
			free = append(free, n)
		}
	}
	rest := m.queue[:0]
	for _, j := range m.queue {
		if j.Nodes > len(free) {
			rest = append(rest, j)
			continue
		}
		r := &runningJob{job: j, start: s.now, nodes: free[:j.Nodes]}
		free = free[j.Nodes:]
		for i, n := range r.nodes {
			name := "job-" + strconv.Itoa(j.ID) + "-" + strconv.Itoa(i)
			if j.Family != "" {
				name = j.Family + "-" + strconv.Itoa(j.ID) + "-" + strconv.Itoa(i)
			}
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: TrainingNamespace, CreationTimestamp: metav1.NewTime(s.now),
					Labels: map[string]string{LabelWorkload: "training", "job": strconv.Itoa(j.ID)}},
				Spec:   corev1.PodSpec{NodeName: n, NodeSelector: map[string]string{LabelPool: "offline"}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: s.now}},
			}
			if _, err := s.cs.CoreV1().Pods(TrainingNamespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("sim: create training pod %s: %w", name, err)
			}
			r.pods = append(r.pods, name)
			m.podJob[name] = j.ID
			m.trainOn[n] = j.ID
		}
		m.running[j.ID] = r
		m.stats.Started++
	}
	m.queue = rest
	return nil
}

// endJob removes a job's pods (those still there) and frees its nodes.
func (s *Sim) endJob(ctx context.Context, ns string, id int) error {
	m := s.mix
	r := m.running[id]
	if r == nil {
		return nil
	}
	for _, name := range r.pods {
		if err := s.cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("sim: delete training pod %s: %w", name, err)
		}
		delete(m.podJob, name)
	}
	for _, n := range r.nodes {
		delete(m.trainOn, n)
	}
	delete(m.running, id)
	return nil
}

// judgePending counts a minute as Pending when an inference pod had no
// node at any step of it.
func (s *Sim) judgePending() {
	m := s.mix
	minute := s.now.Truncate(time.Minute)
	if !minute.Equal(m.pendMin) {
		if m.pendSeen {
			m.stats.PendingMinutes++
		}
		m.pendMin, m.pendSeen = minute, false
	}
	for _, sv := range s.services {
		for _, p := range sv.pods {
			if p.node == "" {
				m.pendSeen = true
				return
			}
		}
	}
}

// MixingStats returns the mixing figures so far (zero without Mixing).
func (s *Sim) MixingStats() MixingStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.mix == nil {
		return MixingStats{}
	}
	st := s.mix.stats
	st.KilledAt = append([]time.Time(nil), st.KilledAt...)
	return st
}
