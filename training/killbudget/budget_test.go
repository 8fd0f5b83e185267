package killbudget

import (
	"testing"
	"time"
)

func TestBudgetSlidingWindow(t *testing.T) {
	b := New(Config{Max: 2, Window: time.Hour})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if !b.Allow(t0) {
		t.Fatal("empty budget refused a kill")
	}
	b.Record(t0)
	b.Record(t0.Add(10 * time.Minute))
	if b.Allow(t0.Add(20 * time.Minute)) {
		t.Fatal("budget of 2/h allowed a third kill within the hour")
	}
	if got := b.Used(t0.Add(30 * time.Minute)); got != 2 {
		t.Fatalf("used = %d, want 2", got)
	}
	// The first kill leaves the window one hour after it happened.
	if !b.Allow(t0.Add(time.Hour + time.Second)) {
		t.Fatal("kill still counted after the window passed")
	}
	if got := b.Remaining(t0.Add(2 * time.Hour)); got != 2 {
		t.Fatalf("remaining after 2h = %d, want 2", got)
	}
}

func TestZeroBudgetForbidsKills(t *testing.T) {
	if New(Config{Max: 0, Window: time.Hour}).Allow(time.Now()) {
		t.Fatal("max 0 allowed a kill")
	}
	var b Budget
	if b.Allow(time.Now()) {
		t.Fatal("zero Budget allowed a kill")
	}
}

func TestRecordOutOfOrderKeepsOrder(t *testing.T) {
	b := New(Config{Max: 5, Window: time.Hour})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Record(t0.Add(30 * time.Minute))
	b.Record(t0) // clock stepped back
	if got := b.Used(t0.Add(65 * time.Minute)); got != 1 {
		t.Fatalf("used = %d, want 1 (the kill at t0 left the window)", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Max: -1, Window: time.Hour}, {Max: 1}} {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if err := (Config{Max: 3, Window: time.Hour}).Validate(); err != nil {
		t.Error(err)
	}
}
