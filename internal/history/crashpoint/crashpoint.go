//go:build crashpoints

package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Enabled reports whether crash points are compiled in (-tags crashpoints).
const Enabled = true

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
