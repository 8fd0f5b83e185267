// Package training will hold the offline training scheduler: quotas,
// borrowing, priority scores, pre-emption, GPU-type fallback and resource
// auto-adjustment. It is not built yet; see the project's issues.
package training
