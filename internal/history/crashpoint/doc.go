// Package crashpoint lets crash tests kill a process at a named point.
//
// Crash points exist only in builds with the crashpoints build tag (the
// crash tests: go test -tags 'integration crashpoints'). There, when the
// environment variable EBBFLOW_CRASHPOINT names a point (optionally with
// ":N", the N-th time it is reached, default 1), Hit kills the process with
// SIGKILL — no deferred function runs, no buffer is flushed, as in a real
// crash; unset, Hit costs one atomic load. In every other build (the
// ebbflow binary) Hit does nothing and EBBFLOW_CRASHPOINT is ignored, so a
// production process cannot be made to kill itself.
package crashpoint

// EnvVar names the crash point to hit.
const EnvVar = "EBBFLOW_CRASHPOINT"

// Points the window processor and the history writer check.
const (
	MidWindow               = "mid-window"
	MidTransaction          = "mid-transaction"
	AfterWriteBeforeRename  = "after-write-before-rename"
	AfterRenameBeforeCommit = "after-rename-before-commit"
)
