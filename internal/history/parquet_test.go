package history

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

func ptr(f float64) *float64 { return &f }

func win(entity, signal string, size, start int64, rev int, count int64, rate *float64) schemas.Window {
	kind := schemas.KindGauge
	if rate != nil {
		kind = schemas.KindCounter
	}
	return schemas.Window{
		Entity: entity, Signal: signal, Kind: kind, SizeS: size, StartMs: start, EndMs: start + size*1000,
		Revision: rev, Count: count, Sum: float64(count) * 2, Min: 1, Max: 3, Mean: 2, Last: 3,
		P50: 2, P95: 2.9, P99: 3, Rate: rate,
	}
}

// 2026-03-01T10:59:00Z
var t0 = time.Date(2026, 3, 1, 10, 59, 0, 0, time.UTC).UnixMilli()

func TestWriteReadRoundTrip(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	in := []schemas.Window{
		win("svc/c1/ns/web", "qps", 60, t0, 0, 4, ptr(12.5)),
		win("svc/c1/ns/web", "qps", 60, t0+60_000, 0, 4, ptr(0)), // next hour
		win("svc/c1/ns/web", "memory", 60, t0, 0, 8, nil),
		win("svc/c1/ns/api", "qps", 15, t0, 0, 1, ptr(3)),
	}
	paths, err := WriteWindows(ctx, LocalFS{}, root, in, "part-p0-o0-9.parquet")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		root + "/windows/size=15s/dt=2026-03-01/hour=10/part-p0-o0-9.parquet",
		root + "/windows/size=60s/dt=2026-03-01/hour=10/part-p0-o0-9.parquet",
		root + "/windows/size=60s/dt=2026-03-01/hour=11/part-p0-o0-9.parquet",
	}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths:\n got %v\nwant %v", paths, want)
	}
	got, err := ReadWindows(ctx, LocalFS{}, root, Query{})
	if err != nil {
		t.Fatal(err)
	}
	wantW := []schemas.Window{in[3], in[2], in[0], in[1]} // sorted entity, signal, size, start
	if !reflect.DeepEqual(got, wantW) {
		t.Fatalf("read back:\n got %+v\nwant %+v", got, wantW)
	}
	if got[1].Rate != nil {
		t.Fatalf("gauge rate must stay null, got %v", *got[1].Rate)
	}
	// No temporary file is left beside the final ones.
	err = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), ".") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadWindowsQuery(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	var in []schemas.Window
	for i := int64(0); i < 180; i++ { // three hours of minutes
		in = append(in, win("svc/c/n/a", "qps", 60, t0+i*60_000, 0, 1, ptr(float64(i))))
		in = append(in, win("svc/c/n/b", "cpu", 60, t0+i*60_000, 0, 1, ptr(1)))
	}
	in = append(in, win("svc/c/n/a", "qps", 15, t0, 0, 1, ptr(1)))
	if _, err := WriteWindows(ctx, LocalFS{}, root, in, "f.parquet"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		q     Query
		count int
		first int64
	}{
		{"all", Query{}, 361, t0},
		{"size 15", Query{SizeS: 15}, 1, t0},
		{"entity a all sizes", Query{Entities: []string{"svc/c/n/a"}}, 181, t0},
		{"signal cpu", Query{Signals: []string{"cpu"}}, 180, t0},
		{"range", Query{SizeS: 60, FromMs: t0 + 60_000, ToMs: t0 + 3*60_000, Signals: []string{"qps"}}, 2, t0 + 60_000},
		{"open end", Query{SizeS: 60, FromMs: t0 + 179*60_000}, 2, t0 + 179*60_000},
		{"nothing", Query{FromMs: t0 + 10*3600_000}, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadWindows(ctx, LocalFS{}, root, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.count {
				t.Fatalf("got %d windows, want %d", len(got), c.count)
			}
			if c.count > 0 && got[0].StartMs != c.first {
				t.Fatalf("first start %d, want %d", got[0].StartMs, c.first)
			}
			for i := 1; i < len(got); i++ {
				a, b := got[i-1], got[i]
				if a.Entity == b.Entity && a.Signal == b.Signal && a.SizeS == b.SizeS && a.StartMs >= b.StartMs {
					t.Fatalf("not sorted at %d: %d then %d", i, a.StartMs, b.StartMs)
				}
			}
		})
	}
}

func TestHighestRevisionWins(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	w0 := win("svc/c/n/a", "qps", 60, t0, 0, 4, ptr(1))
	w2 := win("svc/c/n/a", "qps", 60, t0, 2, 6, ptr(1.5))
	w1 := win("svc/c/n/a", "qps", 60, t0, 1, 5, ptr(1.25))
	for i, ws := range [][]schemas.Window{{w0}, {w2}, {w1}} {
		if _, err := WriteWindows(ctx, LocalFS{}, root, ws, "part-"+string(rune('a'+i))+".parquet"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadWindows(ctx, LocalFS{}, root, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Revision != 2 || got[0].Count != 6 {
		t.Fatalf("want only revision 2 with count 6, got %+v", got)
	}
}

func TestRewriteSameNameNeverDuplicates(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	ws := []schemas.Window{win("svc/c/n/a", "qps", 60, t0, 0, 4, ptr(1))}
	for i := 0; i < 3; i++ {
		if _, err := WriteWindows(ctx, LocalFS{}, root, ws, "part-p3-o10-20.parquet"); err != nil {
			t.Fatal(err)
		}
	}
	// A leftover temporary file from a crash is invisible to readers.
	dir := PartitionDir(root, 60, t0)
	if err := os.WriteFile(TempName(dir, "part-p3-o21-30.parquet"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := ListFiles(ctx, LocalFS{}, root, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("want one visible file, got %v", files)
	}
	got, err := ReadWindows(ctx, LocalFS{}, root, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("want 1 window, got %d", len(got))
	}
}

func TestWriteWindowsRejects(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	good := []schemas.Window{win("svc/c/n/a", "qps", 60, t0, 0, 1, nil)}
	cases := []struct {
		name string
		ws   []schemas.Window
		file string
		want string
	}{
		{"empty name", good, "", "file name"},
		{"hidden name", good, ".x.parquet", "file name"},
		{"path name", good, "a/b.parquet", "file name"},
		{"zero size", []schemas.Window{win("svc/c/n/a", "qps", 0, t0, 0, 1, nil)}, "x.parquet", "size_s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := WriteWindows(ctx, LocalFS{}, root, c.ws, c.file)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error about %q, got %v", c.want, err)
			}
		})
	}
}

func TestReadMissingRootAndCorruptFile(t *testing.T) {
	ctx := context.Background()
	got, err := ReadWindows(ctx, LocalFS{}, filepath.Join(t.TempDir(), "nope"), Query{})
	if err != nil || len(got) != 0 {
		t.Fatalf("missing root: got %v, %v", got, err)
	}
	root := t.TempDir()
	dir := PartitionDir(root, 60, t0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.parquet")
	if err := os.WriteFile(bad, []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadWindows(ctx, LocalFS{}, root, Query{}); err == nil || !strings.Contains(err.Error(), "bad.parquet") {
		t.Fatalf("corrupt file: want an error naming it, got %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		c    Config
		want string
	}{
		{"default", DefaultConfig(), ""},
		{"hdfs without namenode", Config{Backend: BackendHDFS, Root: "/h"}, "namenodes"},
		{"bad backend", Config{Backend: "s3", Root: "/h"}, "backend"},
		{"empty root", Config{Backend: BackendLocal}, "root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.c.Validate()
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("want %q, got %v", c.want, err)
			}
		})
	}
}
