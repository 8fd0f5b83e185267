// Package scheduler is the decision core of ebbflow's training scheduler,
// which runs on top of Kueue and adds what Kueue lacks:
//
//   - job specs (Parse): strict YAML naming the bad field, checked against
//     the configured departments and GPU models;
//   - sizing from the job family's own history (Size): GPUs from the mean
//     utilisation of the last runs and their peak GPU memory, CPU request and
//     limit from recent averages and peaks with configurable headroom;
//   - WPAI's score (Score): 1,000,000 within the department's quota, 1,000
//     when borrowing, a penalty for the department's low recent utilisation
//     and a credit for time waiting, every term named;
//   - placement (Place): long jobs to the fixed pool, others to the mixed
//     pool, GPU models tried in preference order then fallbacks;
//   - the pre-emption guard (CanPreempt): minimum runtime and the kill budget.
//
// Everything here is pure: plain data in, a result with its inputs and
// reason out. Kubernetes and Kueue I/O live in training/kueue; the history
// reader (ReadFamilyRuns) is the one function that touches storage.
package scheduler
