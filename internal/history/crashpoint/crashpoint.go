// Package crashpoint lets crash tests kill a process at a named point.
// When the environment variable EBBFLOW_CRASHPOINT names a point (optionally
// with ":N", the N-th time it is reached, default 1), Hit kills the process
// with SIGKILL there — no deferred function runs, no buffer is flushed, as in
// a real crash. Unset, Hit costs one atomic load.
package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// EnvVar names the crash point to hit.
const EnvVar = "EBBFLOW_CRASHPOINT"

// Points the window processor and the history writer check.
const (
	MidWindow               = "mid-window"
	MidTransaction          = "mid-transaction"
	AfterWriteBeforeRename  = "after-write-before-rename"
	AfterRenameBeforeCommit = "after-rename-before-commit"
)

var (
	once   sync.Once
	armed  atomic.Bool
	point  string
	target int64
	hits   atomic.Int64
)

func load() {
	v := os.Getenv(EnvVar)
	if v == "" {
		return
	}
	name, n, ok := strings.Cut(v, ":")
	target = 1
	if ok {
		if t, err := strconv.ParseInt(n, 10, 64); err == nil && t > 0 {
			target = t
		}
	}
	point = name
	armed.Store(true)
}

// Hit kills the process if name is the armed crash point and this is the
// armed occurrence.
func Hit(name string) {
	once.Do(load)
	if !armed.Load() || name != point {
		return
	}
	if hits.Add(1) == target {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is asynchronous; never continue past the point
	}
}
