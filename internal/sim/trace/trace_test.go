package trace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func points(t *testing.T, csv string, o Options) ([]Point, Stats, error) {
	t.Helper()
	return ReadPoints(strings.NewReader(csv), o)
}

func TestReadPointsTimeRules(t *testing.T) {
	start := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	berlin := time.FixedZone("CEST", 2*3600)
	for _, tc := range []struct {
		name, csv string
		o         Options
		wantMs    []int64
	}{
		{"datetime", "t,v\n2014-04-10 00:04:00,1\n2014-04-10 00:09:00,2\n", Options{},
			[]int64{time.Date(2014, 4, 10, 0, 4, 0, 0, time.UTC).UnixMilli(), time.Date(2014, 4, 10, 0, 9, 0, 0, time.UTC).UnixMilli()}},
		{"datetime T and minutes", "t,v\n2014-04-10T00:04:00,1\n2014-04-10 00:09,2\n", Options{},
			[]int64{time.Date(2014, 4, 10, 0, 4, 0, 0, time.UTC).UnixMilli(), time.Date(2014, 4, 10, 0, 9, 0, 0, time.UTC).UnixMilli()}},
		{"datetime in a zone", "t,v\n2014-04-10 02:04:00,1\n", Options{Location: berlin},
			[]int64{time.Date(2014, 4, 10, 0, 4, 0, 0, time.UTC).UnixMilli()}},
		{"rfc3339", "t,v\n2014-04-10T00:04:00+02:00,1\n", Options{},
			[]int64{time.Date(2014, 4, 9, 22, 4, 0, 0, time.UTC).UnixMilli()}},
		{"unix seconds", "t,v\n1400000000,1\n1400000060,2\n", Options{}, []int64{1_400_000_000_000, 1_400_000_060_000}},
		{"unix ms by magnitude", "t,v\n1400000000000,1\n1400000060000,2\n", Options{}, []int64{1_400_000_000_000, 1_400_000_060_000}},
		{"small numbers without a start are Unix seconds", "t,v\n0,1\n300,2\n", Options{}, []int64{0, 300_000}},
		{"small numbers with a start are offsets", "t,v\n0,1\n300,2\n", Options{Start: start},
			[]int64{start.UnixMilli(), start.UnixMilli() + 300_000}},
		{"explicit unix_ms", "t,v\n1000,1\n", Options{TimeFormat: FormatUnixMs}, []int64{1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts, _, err := points(t, tc.csv, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != len(tc.wantMs) {
				t.Fatalf("%d points, want %d", len(pts), len(tc.wantMs))
			}
			for i, p := range pts {
				if p.Ms != tc.wantMs[i] {
					t.Errorf("point %d at %d, want %d", i, p.Ms, tc.wantMs[i])
				}
			}
		})
	}
}

func TestReadPointsColumns(t *testing.T) {
	const csv = "\ufefftime , total,active\n0,420,312\n60,420,309\n"
	for _, tc := range []struct {
		name    string
		o       Options
		wantCol string
		wantV   float64
	}{
		{"default second column", Options{}, "total", 420},
		{"by name", Options{ValueCol: "active"}, "active", 312},
		{"by index", Options{ValueCol: "2"}, "active", 312},
		{"preferred name", Options{PreferValueCols: []string{"qps", "active"}}, "active", 312},
		{"named beats preferred", Options{ValueCol: "total", PreferValueCols: []string{"active"}}, "total", 420},
		{"time by name after the BOM", Options{TimeCol: "time", ValueCol: "active"}, "active", 312},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts, st, err := points(t, csv, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if st.ValueCol != tc.wantCol || pts[0].V != tc.wantV || st.Rows != 2 {
				t.Fatalf("column %q value %v rows %d, want %q %v 2", st.ValueCol, pts[0].V, st.Rows, tc.wantCol, tc.wantV)
			}
		})
	}
}

// TestReadPointsRefuses: every broken rule is an error naming the line or
// column; the lenient options accept exactly what they say.
func TestReadPointsRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		o         Options
		want      string
	}{
		{"out of order", "t,v\n60,1\n0,2\n", Options{}, "line 3: time \"0\" is before"},
		{"empty value", "t,v\n0,1\n60,\n", Options{}, "line 3: column v is empty"},
		{"not a number", "t,v\n0,1\n60,x\n", Options{}, "line 3: column v: value \"x\""},
		{"infinite", "t,v\n0,Inf\n", Options{}, "line 2: column v: value \"Inf\" is not a finite number"},
		{"bad time", "t,v\nyesterday,1\n", Options{}, "line 2: timestamp \"yesterday\""},
		{"offset without start", "t,v\n0,1\n", Options{TimeFormat: FormatOffset}, "needs a start time"},
		{"no such column", "t,v\n0,1\n", Options{ValueCol: "qps"}, "no column \"qps\""},
		{"value is the time column", "t,v\n0,1\n", Options{ValueCol: "t"}, "is the time column"},
		{"one column", "t\n0\n", Options{}, "header has 1 columns"},
		{"short row", "t,v\n0\n", Options{}, "line 2: 1 fields"},
		{"no rows", "t,v\n", Options{}, "no rows"},
		{"only gaps", "t,v\n0,\n", Options{EmptyIsGap: true}, "no rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := points(t, tc.csv, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
	pts, st, err := points(t, "t,v\n120,3\n0,1\n60,2\n", Options{Sort: true})
	if err != nil || len(pts) != 3 || pts[0].V != 1 || pts[2].V != 3 || st.FirstMs != 0 || st.LastMs != 120_000 {
		t.Fatalf("Sort: %v %+v %v", pts, st, err)
	}
	pts, st, err = points(t, "t,v\n0,1\n60,\n120,3\n", Options{EmptyIsGap: true})
	if err != nil || len(pts) != 2 || st.Skipped != 1 || st.Rows != 2 {
		t.Fatalf("EmptyIsGap: %v %+v %v", pts, st, err)
	}
}

func TestReadWindows(t *testing.T) {
	// Two rows in the first minute (averaged), none in the second (a gap).
	const csv = "t,v\n0,2\n30,4\n120,5\n180,7\n"
	ws, st, err := Read(strings.NewReader(csv), Options{Entity: "svc/a/b/c", Signal: "qps", StepS: 60})
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 || st.Gaps != 1 || st.StepS != 60 || st.Rows != 4 {
		t.Fatalf("%d windows, stats %+v", len(ws), st)
	}
	if w := ws[0]; w.Count != 2 || w.Mean != 3 || w.Min != 2 || w.Max != 4 || w.Last != 4 || w.EndMs != 60_000 {
		t.Fatalf("first window %+v", w)
	}
	if ws[1].StartMs != 120_000 || ws[1].Mean != 5 {
		t.Fatalf("second window %+v", ws[1])
	}
	if _, _, err := Read(strings.NewReader(csv), Options{Signal: "qps"}); err == nil || !strings.Contains(err.Error(), "entity") {
		t.Fatalf("no entity: %v", err)
	}
}

// TestRealTracesStep reads each shared trace with its default rules
// (strict order, no empty cells) and infers its step.
func TestRealTracesStep(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file  string
		o     Options
		stepS int64
	}{
		{"nasa_requests_per_minute.csv", Options{}, 60},
		{"philly_node_sequence.csv", Options{ValueCol: "active"}, 60},
		{"elb_request_count_8c0756.csv", Options{}, 300},
		{"vm_cpu_readings_month_aggregated_cpu_mem.csv", Options{Start: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)}, 300},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatalf("open trace (the traces are in %s): %v", dir, err)
			}
			defer f.Close()
			tc.o.Entity, tc.o.Signal = "svc/trace/x/web", "qps"
			ws, st, err := Read(f, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if st.StepS != tc.stepS || len(ws) < 1000 || st.Skipped != 0 {
				t.Fatalf("step %d, %d windows, %d skipped; want step %d", st.StepS, len(ws), st.Skipped, tc.stepS)
			}
		})
	}
}
