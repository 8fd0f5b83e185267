package backtest

import (
	"math"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/schemas"
)

func win(entity string, startMs int64, v float64, rev int) schemas.Window {
	return schemas.Window{Entity: entity, Signal: "qps", Kind: schemas.KindGauge, SizeS: 60, StartMs: startMs, EndMs: startMs + 60_000,
		Count: 1, Sum: v, Min: v, Max: v, Mean: v, Last: v, Revision: rev}
}

func TestFromWindowsKeepsGapsAndLatestRevision(t *testing.T) {
	ws := []schemas.Window{win("e", 120_000, 3, 0), win("e", 0, 1, 0), win("e", 0, 2, 1), win("e", 0, 9, 0)}
	s, err := FromWindows("", ws)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "e" || s.StartMs != 0 || s.StepS != 60 || len(s.Values) != 3 {
		t.Fatalf("series %+v", s)
	}
	if s.Values[0] != ws[2].Value() || !math.IsNaN(s.Values[1]) || s.Values[2] != ws[0].Value() {
		t.Errorf("values %v: want the latest revision, a gap, then the third window", s.Values)
	}
	if _, err := FromWindows("", []schemas.Window{win("a", 0, 1, 0), win("b", 60_000, 1, 0)}); err == nil || !strings.Contains(err.Error(), "mixed") {
		t.Errorf("two entities: %v", err)
	}
	if _, err := FromWindows("", nil); err == nil {
		t.Error("no windows: no error")
	}
}
