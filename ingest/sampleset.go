package ingest

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/ebbflow/ebbflow/schemas"
)

// SampleSet counts the distinct samples among metrics.raw rows, for the
// benchmarks that read back what reached the topic: the mapping may write
// one sample as several rows (one per rule it feeds, e.g. a GPU metric
// attributed to its service and to its node) and drops series no rule
// maps, so rows are not samples. A sample is its metric name, its labels
// (as written, __name__ stripped) and its timestamp. Only rows of the
// metric names given count: a ratio rule's recorded series, or another
// writer's, are not samples the sender sent. Keys are 64-bit hashes: a
// collision among a few million keys has odds of about 1e-7.
type SampleSet struct {
	names map[string]bool
	seen  map[uint64]struct{}
	h     maphash.Hash
}

// NewSampleSet counts samples of the metric names given.
func NewSampleSet(names []string) *SampleSet {
	s := &SampleSet{names: map[string]bool{}, seen: map[uint64]struct{}{}}
	for _, n := range names {
		s.names[n] = true
	}
	s.h.SetSeed(maphash.MakeSeed())
	return s
}

// Add counts the samples of rows not seen before.
func (s *SampleSet) Add(rows []schemas.RawSample) {
	var ts [8]byte
	for i := range rows {
		r := &rows[i]
		if !s.names[r.Metric] {
			continue
		}
		s.h.Reset()
		s.h.WriteString(r.Metric)
		for _, l := range r.Labels {
			s.h.WriteByte(0xff)
			s.h.WriteString(l.Name)
			s.h.WriteByte(0xfe)
			s.h.WriteString(l.Value)
		}
		binary.LittleEndian.PutUint64(ts[:], uint64(r.TimestampMs))
		_, _ = s.h.Write(ts[:])
		s.seen[s.h.Sum64()] = struct{}{}
	}
}

// Len is the number of distinct samples counted.
func (s *SampleSet) Len() int64 { return int64(len(s.seen)) }
