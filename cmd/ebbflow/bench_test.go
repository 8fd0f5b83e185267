package main

import (
	"crypto/sha256"
	"testing"

	"github.com/klauspost/compress/snappy"

	"github.com/ebbflow/ebbflow/ingest"
)

// bench ingest must never send the same request twice (a receiver that
// deduplicates resends would acknowledge it without writing): bodies differ
// between successive requests and between workers, timestamps grow per
// series, and churn moves series to new pods.
func TestBenchRequestsAreDistinct(t *testing.T) {
	seen := map[[32]byte]bool{}
	gens := []*requestGen{newRequestGen(0, 200, 20, 1, 0.05, false), newRequestGen(1, 200, 20, 1, 0.05, false)}
	lastTs := make([]int64, len(gens))
	pods0 := map[string]bool{}
	for r := 0; r < 50; r++ {
		for w, g := range gens {
			body := g.next()
			h := sha256.Sum256(body)
			if seen[h] {
				t.Fatalf("worker %d request %d repeats an earlier body", w, r)
			}
			seen[h] = true
			raw, err := snappy.Decode(nil, body)
			if err != nil {
				t.Fatal(err)
			}
			var req ingest.WriteRequest
			if err := ingest.DecodeWriteRequestV1(raw, &req); err != nil {
				t.Fatalf("worker %d request %d: %v", w, r, err)
			}
			if n := req.NumSamples(); n != 200 {
				t.Fatalf("request has %d samples, want 200", n)
			}
			ts := g.ss[0].Samples[0].TimestampMs
			if ts <= lastTs[w] {
				t.Fatalf("worker %d request %d: timestamp %d not after %d", w, r, ts, lastTs[w])
			}
			lastTs[w] = ts
			if r == 0 && w == 0 {
				for _, s := range g.ss {
					pods0[s.Labels[5].Value] = true
				}
			}
		}
	}
	newPods := 0
	for _, s := range gens[0].ss {
		if !pods0[s.Labels[5].Value] {
			newPods++
		}
	}
	if newPods == 0 {
		t.Error("after 50 requests at 5 % churn no series moved to a new pod")
	}
}
