// Package kueue binds ebbflow's training scheduler to Kueue, the engine
// that queues, admits and pre-empts the jobs. It renders a planned job as a
// Kueue-managed batch/v1 Job (queue-name and priority-class labels,
// suspended, node affinity for its pool, node selector for its GPU model),
// renders the Kueue objects a configuration implies (ResourceFlavors,
// ClusterQueues in one cohort, LocalQueues, the WorkloadPriorityClass),
// lists Workloads with the reason each waits, and writes WPAI's score as
// each Workload's spec.priority, refreshing it as waits grow and raising
// the priority of runs the pre-emption guard protects (minimum runtime,
// kill budget), which is how the guard binds Kueue's own pre-emption.
//
// Kueue's Go types are not imported: its v0.17 module pins Kubernetes
// 0.35 and controller-runtime, while ebbflow's main module is on 0.36.
// Kueue objects go through client-go's dynamic client as unstructured
// objects, which also keeps the API version configurable.
package kueue
