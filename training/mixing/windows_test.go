package mixing

import (
	"testing"
	"time"
)

func TestReturnSchedule(t *testing.T) {
	pol := DefaultPolicy() // expect 0.65, spare 1, lead 4 min
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	// 3 online; demand rises: 1.3 nodes (needs 2+1=3), then 2.6 (4+1=5),
	// then 3.9 (6+1=7).
	demand := []DemandPoint{{at(60), 1.3}, {at(120), 2.6}, {at(180), 3.9}, {at(240), 1}}
	got := ReturnSchedule(t0, demand, 3, 6, pol)
	want := []time.Time{at(116), at(116), at(176), at(176), at(240), at(240)}
	if len(got) != len(want) {
		t.Fatalf("got %d windows, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Fatalf("window %d ends %v, want %v (all: %v)", i, got[i].Sub(t0), want[i].Sub(t0), got)
		}
	}
}

func TestFitsWindows(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	returns := []time.Time{at(60), at(120), at(600)}
	cases := []struct {
		busy []time.Time
		new  []time.Time
		fits bool
	}{
		{nil, []time.Time{at(500)}, true},
		{[]time.Time{at(500)}, []time.Time{at(100)}, true},
		{[]time.Time{at(500)}, []time.Time{at(500)}, false},                // two need the one long window
		{[]time.Time{at(30), at(110)}, []time.Time{at(590)}, true},         // each end under its window
		{[]time.Time{at(30), at(110)}, []time.Time{at(10), at(20)}, false}, // more jobs than nodes
		{nil, []time.Time{at(601)}, false},
	}
	for i, c := range cases {
		if got := FitsWindows(c.busy, returns, c.new...); got != c.fits {
			t.Fatalf("case %d: fits %v, want %v", i, got, c.fits)
		}
	}
}
