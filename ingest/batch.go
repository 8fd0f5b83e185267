package ingest

import (
	"github.com/ebbflow/ebbflow/schemas"
)

// Batch collects mapped samples grouped by entity, in first-seen order, and
// counts what was dropped and why. It is reused between requests (Reset)
// and is not safe for concurrent use.
type Batch struct {
	groups  map[string]int
	Groups  []EntityGroup
	Dropped map[string]int
	n       int
	scratch []byte
	// Digest identifies the remote_write request b was mapped from
	// (HasDigest); the publisher uses it to recognise resends.
	Digest    Digest
	HasDigest bool
}

// EntityGroup is the samples of one entity.
type EntityGroup struct {
	Entity  string
	Samples []schemas.RawSample
}

// NewBatch returns an empty batch.
func NewBatch() *Batch {
	return &Batch{groups: map[string]int{}, Dropped: map[string]int{}}
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	clear(b.groups)
	for i := range b.Groups {
		clear(b.Groups[i].Samples) // drop references to the old request body
		b.Groups[i].Samples = b.Groups[i].Samples[:0]
	}
	b.Groups = b.Groups[:0]
	clear(b.Dropped)
	b.n = 0
	b.HasDigest = false
}

// Len returns the number of samples in b.
func (b *Batch) Len() int { return b.n }

// DroppedTotal returns the number of samples dropped.
func (b *Batch) DroppedTotal() int {
	n := 0
	for _, c := range b.Dropped {
		n += c
	}
	return n
}

func (b *Batch) drop(reason string, n int) {
	if n > 0 {
		b.Dropped[reason] += n
	}
}

func (b *Batch) group(entity []byte) *EntityGroup {
	if i, ok := b.groups[string(entity)]; ok {
		return &b.Groups[i]
	}
	e := string(entity)
	b.groups[e] = len(b.Groups)
	if len(b.Groups) < cap(b.Groups) {
		b.Groups = b.Groups[:len(b.Groups)+1]
		g := &b.Groups[len(b.Groups)-1]
		g.Entity = e
		return g
	}
	b.Groups = append(b.Groups, EntityGroup{Entity: e})
	return &b.Groups[len(b.Groups)-1]
}

func (b *Batch) add(entity []byte, signal, kind, metric string, labels []schemas.Label, samples []Sample) {
	if len(samples) == 0 {
		return
	}
	g := b.group(entity)
	for _, s := range samples {
		g.Samples = append(g.Samples, schemas.RawSample{
			Entity: g.Entity, Signal: signal, Kind: kind, Metric: metric,
			Labels: labels, TimestampMs: s.TimestampMs, Value: s.Value,
		})
	}
	b.n += len(samples)
}

func (b *Batch) addOne(entity []byte, signal, kind, metric string, labels []schemas.Label, s Sample) {
	g := b.group(entity)
	g.Samples = append(g.Samples, schemas.RawSample{
		Entity: g.Entity, Signal: signal, Kind: kind, Metric: metric,
		Labels: labels, TimestampMs: s.TimestampMs, Value: s.Value,
	})
	b.n++
}
