// Package cluster gives integration tests the real test cluster that deploy/dev/services.sh
// starts: kube-apiserver, kube-scheduler and kube-controller-manager (RBAC on), kwok running fake
// nodes and their pods, and the Kueue controller.
//
// A test opens a Scope: its own namespace and an id that confines everything it creates. Fake
// nodes of a node group (cpu, t4, a100 — GPU count, GPU model label, pool label) carry the label
// and the NoSchedule taint ebbflow.io/test=<id>, so parallel tests in other packages never share
// nodes; Confine gives a pod spec the matching node selector and toleration. Kueue objects from
// testdata/kueue (or rendered by training setup) are applied with the id appended to their cluster-scoped names (flavors,
// ClusterQueues, cohorts) so two tests never share quota.
//
// Waiting is always on a condition with a deadline (WaitFor), never a fixed sleep; a service
// that is not there fails the test with the reason (never a skip).
//
// The package holds test helpers only: it imports no ebbflow component.
package cluster
