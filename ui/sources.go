package ui

import (
	"context"
	"errors"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Sources are what the UI reads besides the topics and how its forms act:
// the Kubernetes API (node groups and pools, the training queue) and the
// CLI's operations. Any may be nil: the page then says it is unavailable.
type Sources struct {
	// Kube lists the nodes (node groups and pools).
	Kube kubernetes.Interface
	// KubeErr says why Kube is nil.
	KubeErr error
	// GroupLabel is the node label naming a node's group (mixing.group_label).
	GroupLabel string
	// Queue lists the training queue (Kueue Workloads with score terms).
	Queue func(ctx context.Context) ([]QueueJob, error)
	// QueueErr says why Queue is nil.
	QueueErr error
	// SubmitTraining is `ebbflow training submit` (wire.SubmitTraining).
	SubmitTraining func(ctx context.Context, doc []byte, dryRun bool) (FormResult, error)
	// RegisterModel is `ebbflow inference validate` and, unless
	// validateOnly, writing the spec into the model store the servers
	// decider (`ebbflow inference run`) watches.
	RegisterModel func(ctx context.Context, doc []byte, validateOnly bool) (FormResult, error)
}

// QueueJob is one row of the training queue.
type QueueJob struct {
	Namespace, Job, Department string
	GPUs                       int
	Flavor                     string
	Priority                   int32
	// State is waiting, admitted or finished.
	State string
	// Terms is the score with every term ("" when admitted or finished).
	Terms string
	// Why is why it waits ("" when it does not).
	Why string
}

// FormResult is what a form's action did, in lines for the page.
type FormResult struct {
	Summary string
	Lines   []string
}

// Pools of the node-mixing state (training/mixing labels).
const (
	labelPool     = "ebbflow.io/pool"
	labelHandover = "ebbflow.io/handover"
)

// NodeInfo is one node of a group as the API server has it now.
type NodeInfo struct {
	Name, Group, Pool, Handover string
	Ready, Unschedulable        bool
}

// NodeGroup is a group's nodes.
type NodeGroup struct {
	Name  string
	Nodes []NodeInfo
	// Pools counts nodes per pool (online, offline, fixed) and "handover".
	Pools map[string]int
}

var errNoKube = errors.New("no Kubernetes client configured")

// nodeGroups lists the labelled nodes by group.
func (s Sources) nodeGroups(ctx context.Context) ([]NodeGroup, error) {
	if s.Kube == nil {
		if s.KubeErr != nil {
			return nil, s.KubeErr
		}
		return nil, errNoKube
	}
	label := s.GroupLabel
	if label == "" {
		label = "ebbflow.io/node-group"
	}
	list, err := s.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: label})
	if err != nil {
		return nil, err
	}
	byGroup := map[string]*NodeGroup{}
	for _, n := range list.Items {
		g := n.Labels[label]
		ng := byGroup[g]
		if ng == nil {
			ng = &NodeGroup{Name: g, Pools: map[string]int{}}
			byGroup[g] = ng
		}
		ni := NodeInfo{Name: n.Name, Group: g, Pool: n.Labels[labelPool], Handover: n.Labels[labelHandover],
			Unschedulable: n.Spec.Unschedulable}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ni.Ready = c.Status == corev1.ConditionTrue
			}
		}
		if ni.Pool == "" {
			ni.Pool = "unlabelled"
		}
		ng.Nodes = append(ng.Nodes, ni)
		ng.Pools[ni.Pool]++
		if ni.Handover != "" {
			ng.Pools["handover"]++
		}
	}
	out := make([]NodeGroup, 0, len(byGroup))
	for _, g := range byGroup {
		sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].Name < g.Nodes[j].Name })
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var errNoQueue = errors.New("no Kueue client configured")

func (s Sources) queue(ctx context.Context) ([]QueueJob, error) {
	if s.Queue == nil {
		if s.QueueErr != nil {
			return nil, s.QueueErr
		}
		return nil, errNoQueue
	}
	return s.Queue(ctx)
}
