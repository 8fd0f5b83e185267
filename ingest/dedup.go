package ingest

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"sync"
	"time"
)

// Digest identifies a remote_write request by its content: SHA-256 over
// the canonical form of the decoded request (every series' labels in the
// order sent, its samples' timestamps and value bits, its native histogram
// count). Prometheus resends exactly the same samples when it retries a
// request, so a retry has the digest of the original, whatever its
// protocol version or compression.
type Digest [sha256.Size]byte

// requestDigest returns w's digest; scratch is reused between calls.
func requestDigest(w *WriteRequest, scratch *[]byte) Digest {
	b := (*scratch)[:0]
	b = binary.AppendUvarint(b, uint64(len(w.Series)))
	for i := range w.Series {
		s := &w.Series[i]
		b = binary.AppendUvarint(b, uint64(len(s.Labels)))
		for _, l := range s.Labels {
			b = binary.AppendUvarint(b, uint64(len(l.Name)))
			b = append(b, l.Name...)
			b = binary.AppendUvarint(b, uint64(len(l.Value)))
			b = append(b, l.Value...)
		}
		b = binary.AppendUvarint(b, uint64(len(s.Samples)))
		for _, x := range s.Samples {
			b = binary.LittleEndian.AppendUint64(b, uint64(x.TimestampMs))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x.Value))
		}
		b = binary.AppendUvarint(b, uint64(s.Histograms))
	}
	*scratch = b
	return sha256.Sum256(b)
}

// dedupSet remembers which requests are known to be in Kafka (committed),
// bounded by count and age, and which are being written right now, so that
// a resend of either is not written a second time.
type dedupSet struct {
	mu     sync.Mutex
	max    int
	maxAge time.Duration
	done   map[Digest]int64 // committed, unix ns when it became known
	queue  []dedupEntry     // insertion order, for eviction
	head   int
	flying map[Digest]chan struct{}
}

type dedupEntry struct {
	d  Digest
	at int64
}

func newDedupSet(max int, maxAge time.Duration) *dedupSet {
	return &dedupSet{max: max, maxAge: maxAge, done: map[Digest]int64{}, flying: map[Digest]chan struct{}{}}
}

// begin claims d for writing. It returns committed when a request with
// this digest is already in Kafka; otherwise, when another request with
// this digest is being written, the channel closed when that one ends
// (the caller waits and asks again); otherwise d is claimed and the caller
// must call end.
func (s *dedupSet) begin(d Digest, now time.Time) (committed bool, busy <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.done[d]; ok && now.UnixNano()-at <= int64(s.maxAge) {
		return true, nil
	}
	if ch, ok := s.flying[d]; ok {
		return false, ch
	}
	s.flying[d] = make(chan struct{})
	return false, nil
}

// end releases a claim; committed records that the request is in Kafka.
func (s *dedupSet) end(d Digest, committed bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.flying[d]; ok {
		close(ch)
		delete(s.flying, d)
	}
	if committed {
		s.add(d, now.UnixNano())
	}
}

func (s *dedupSet) add(d Digest, at int64) {
	s.done[d] = at
	s.queue = append(s.queue, dedupEntry{d, at})
	for s.head < len(s.queue) {
		e := s.queue[s.head]
		if len(s.queue)-s.head <= s.max && at-e.at <= int64(s.maxAge) {
			break
		}
		if s.done[e.d] == e.at {
			delete(s.done, e.d)
		}
		s.queue[s.head] = dedupEntry{}
		s.head++
	}
	if s.head > 1024 && s.head > len(s.queue)/2 {
		n := copy(s.queue, s.queue[s.head:])
		s.queue = s.queue[:n]
		s.head = 0
	}
}

// len returns how many committed requests are remembered.
func (s *dedupSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.done)
}
