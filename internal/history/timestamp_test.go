package history

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/schema"
)

// TestTimestampColumns: a written file has start_time and end_time as
// Parquet TIMESTAMP(MILLIS, adjusted to UTC) holding the window bounds,
// beside the int64 start_ms and end_ms, and the committed golden history
// (written before these columns) is still the legacy layout and readable
// (TestGoldenHistoryReadable).
func TestTimestampColumns(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	ws := goldenWindows()
	paths, err := WriteWindows(ctx, LocalFS{}, root, ws, "part-ts.parquet")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := file.NewParquetReader(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := pr.MetaData().Schema
		for _, name := range []string{"start_time", "end_time", "start_ms", "end_ms"} {
			if sc.ColumnIndexByName(name) < 0 {
				t.Errorf("%s: no column %s", p, name)
			}
		}
		for _, name := range []string{"start_time", "end_time"} {
			col := sc.Column(sc.ColumnIndexByName(name))
			ts, ok := col.LogicalType().(*schema.TimestampLogicalType)
			if !ok {
				t.Fatalf("%s: %s logical type %s, want TIMESTAMP", p, name, col.LogicalType())
			}
			if !ts.IsAdjustedToUTC() || ts.TimeUnit() != schema.TimeUnitMillis {
				t.Errorf("%s: %s is %s, want TIMESTAMP(MILLIS, UTC)", p, name, ts)
			}
		}
		pr.Close()
	}
	got, err := ReadWindows(ctx, LocalFS{}, root, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ws) {
		t.Fatalf("read %d windows, want %d", len(got), len(ws))
	}

	// The golden history predates the timestamp columns.
	gp, _ := filepath.Glob(filepath.Join(goldenRoot, WindowsDir, "*", "*", "*", "*.parquet"))
	if len(gp) == 0 {
		t.Fatal("no golden parquet files")
	}
	f, err := os.Open(gp[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if n := pr.MetaData().Schema.NumColumns(); n != LegacyWindowFields {
		t.Errorf("golden %s has %d columns, want the legacy %d", gp[0], n, LegacyWindowFields)
	}
}
