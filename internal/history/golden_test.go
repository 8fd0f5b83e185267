package history

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ebbflow/ebbflow/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/history from the current writer")

// goldenRoot is a committed history written by an earlier version of
// WriteWindows: reading it proves the file format stays readable.
const goldenRoot = "../../testdata/history"

func goldenWindows() []schemas.Window {
	r := 2.5
	return []schemas.Window{
		{Entity: "svc/c1/prod/web", Signal: "qps", Kind: "counter", SizeS: 60, StartMs: 1772359200000, EndMs: 1772359260000,
			Count: 8, Sum: 1200, Min: 100, Max: 200, Mean: 150, Last: 200, P50: 149.5, P95: 199, P99: 200, Rate: &r},
		{Entity: "svc/c1/prod/web", Signal: "memory", Kind: "gauge", SizeS: 60, StartMs: 1772359200000, EndMs: 1772359260000,
			Revision: 1, Count: 4, Sum: 4e9, Min: 9e8, Max: 1.1e9, Mean: 1e9, Last: 1.05e9, P50: 1e9, P95: 1.1e9, P99: 1.1e9},
		{Entity: "node/c1/gpu-7", Signal: "gpu_util", Kind: "gauge", SizeS: 15, StartMs: 1772362800000, EndMs: 1772362815000,
			Count: 1, Sum: 87, Min: 87, Max: 87, Mean: 87, Last: 87, P50: 87, P95: 87, P99: 87},
	}
}

func TestGoldenHistoryReadable(t *testing.T) {
	ctx := context.Background()
	if *update {
		if err := os.RemoveAll(filepath.Join(goldenRoot, WindowsDir)); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteWindows(ctx, LocalFS{}, goldenRoot, goldenWindows(), "part-golden.parquet"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadWindows(ctx, LocalFS{}, goldenRoot, Query{})
	if err != nil {
		t.Fatal(err)
	}
	want := goldenWindows()
	want[0], want[2] = want[2], want[0] // sorted: node/… first, then memory before qps
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("golden history:\n got %+v\nwant %+v", got, want)
	}
}
