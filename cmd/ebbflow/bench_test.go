package main

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"

	"github.com/ebbflow/ebbflow/ingest"
	"github.com/ebbflow/ebbflow/schemas"
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

// --layout services: every series maps under ingest's default rules (none
// dropped) to the service entity of its Deployment; each service has qps
// and cpu from every pod and one replicas gauge equal to its pod count;
// counters grow between requests at the service's rate, and some services
// run above autoscale's default 70 % CPU target so the decider decides.
func TestBenchIngestServicesLayout(t *testing.T) {
	const pods, series = 4, 200
	g := newServiceGen(3, series, 20, 1, pods, 0, false)
	if want := series / (2*pods + 1); len(g.svcs) != want || len(g.ss) != want*(2*pods+1) {
		t.Fatalf("%d services, %d series; want %d services of %d series", len(g.svcs), len(g.ss), want, 2*pods+1)
	}
	m, err := ingest.NewMapper(ingest.DefaultRules(), "c1", ingest.UnmatchedDrop)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(body []byte) ingest.WriteRequest {
		t.Helper()
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		var req ingest.WriteRequest
		if err := ingest.DecodeWriteRequestV1(raw, &req); err != nil {
			t.Fatal(err)
		}
		return req
	}
	mapReq := func(req ingest.WriteRequest) map[string]map[string][]float64 {
		t.Helper()
		b := ingest.NewBatch()
		for _, s := range req.Series {
			m.Map(b, s.Labels, s.Samples)
		}
		if b.DroppedTotal() != 0 {
			t.Fatalf("default rules dropped %v", b.Dropped)
		}
		out := map[string]map[string][]float64{} // entity → signal → values (one per series)
		for _, gr := range b.Groups {
			for _, s := range gr.Samples {
				if out[s.Entity] == nil {
					out[s.Entity] = map[string][]float64{}
				}
				out[s.Entity][s.Signal] = append(out[s.Entity][s.Signal], s.Value)
			}
		}
		return out
	}
	first := mapReq(decode(g.next()))
	time.Sleep(20 * time.Millisecond)
	second := mapReq(decode(g.next()))
	if len(first) != len(g.svcs) {
		t.Fatalf("%d entities for %d services: %v", len(first), len(g.svcs), first)
	}
	over := 0
	for k, sv := range g.svcs {
		e := "svc/c1/team-" + strconv.Itoa(k%7) + "/" + sv.name
		sigs, ok := second[e]
		if !ok {
			t.Fatalf("service %s: no entity %s", sv.name, e)
		}
		if len(sigs) != 3 || len(sigs["qps"]) != pods || len(sigs["cpu"]) != pods || len(sigs["replicas"]) != 1 {
			t.Fatalf("%s: signals %v, want qps and cpu from %d pods and one replicas", e, sigs, pods)
		}
		if sigs["replicas"][0] != pods {
			t.Fatalf("%s: replicas %v, want %d", e, sigs["replicas"][0], pods)
		}
		for _, sig := range []string{"qps", "cpu"} {
			for i, v := range sigs[sig] {
				if v <= first[e][sig][i] {
					t.Fatalf("%s %s pod %d: counter %v did not grow from %v", e, sig, i, v, first[e][sig][i])
				}
			}
		}
		if g.kinds[sv.pods[0][1]].rate > 0.7*1.05 {
			over++
		}
	}
	if over == 0 || over == len(g.svcs) {
		t.Fatalf("%d of %d services above the 70 %% CPU target: want some, not all", over, len(g.svcs))
	}
	// Churn moves a whole pod (both its series) to a new pod name of the
	// same Deployment: the service keeps its entity.
	gc := newServiceGen(0, series, 20, 1, pods, 0.2, false)
	before := map[string]bool{}
	for _, s := range gc.ss {
		before[lookupLabel(s.Labels, "pod")] = true
	}
	for range 3 {
		got := mapReq(decode(gc.next()))
		if len(got) != len(gc.svcs) {
			t.Fatalf("after churn %d entities for %d services", len(got), len(gc.svcs))
		}
	}
	moved := 0
	for _, sv := range gc.svcs {
		for _, p := range sv.pods {
			a, b := lookupLabel(gc.ss[p[0]].Labels, "pod"), lookupLabel(gc.ss[p[1]].Labels, "pod")
			if a != b {
				t.Fatalf("a pod's series are on different pods %s and %s", a, b)
			}
			if !before[a] {
				moved++
			}
		}
	}
	if moved == 0 {
		t.Fatal("churn 0.2 moved no pod")
	}
}

func lookupLabel(ls []schemas.Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}
