package features

import (
	"fmt"
	"sort"

	"github.com/ebbflow/ebbflow/schemas"
)

// History is every entity's rings over a span of windows of one size,
// built in one go for training and evaluation.
type History struct {
	StepS int64
	// First and Last are the first and last steps of any window.
	First, Last int64
	Entities    map[string]Entity
}

// Step is the step index of a window start.
func Step(startMs, stepS int64) int64 {
	ms := stepS * 1000
	q := startMs / ms
	if startMs%ms != 0 && startMs < 0 {
		q--
	}
	return q
}

// FromWindows indexes windows of size stepS (others are ignored) by entity
// and signal; a later revision of a window replaces an earlier one.
func FromWindows(ws []schemas.Window, stepS int64) (*History, error) {
	h := &History{StepS: stepS, Entities: map[string]Entity{}}
	first, last := int64(0), int64(0)
	n := 0
	for _, w := range ws {
		if w.SizeS != stepS {
			continue
		}
		s := Step(w.StartMs, stepS)
		if n == 0 || s < first {
			first = s
		}
		if n == 0 || s > last {
			last = s
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("features: no windows of size %ds in the history", stepS)
	}
	h.First, h.Last = first, last
	span := int(last-first) + 1
	rev := map[[3]string]int{}
	for _, w := range ws {
		if w.SizeS != stepS {
			continue
		}
		e := h.Entities[w.Entity]
		if e == nil {
			e = Entity{}
			h.Entities[w.Entity] = e
		}
		r := e[w.Signal]
		if r == nil {
			r = NewRingFull(span)
			r.Set(first, nanValue) // anchor the ring at the first step
			e[w.Signal] = r
		}
		k := [3]string{w.Entity, w.Signal, fmt.Sprint(w.StartMs)}
		if old, ok := rev[k]; ok && old > w.Revision {
			continue
		}
		rev[k] = w.Revision
		r.Set(Step(w.StartMs, stepS), w.Value())
	}
	return h, nil
}

var nanValue = nan

// EntityNames returns the entities, sorted.
func (h *History) EntityNames() []string {
	out := make([]string, 0, len(h.Entities))
	for e := range h.Entities {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}
