//go:build integration

package history

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

// TestPyarrowSeesTimestamps: pyarrow (the venv's, EBBFLOW_TEST_PYTHON)
// reads a history written by WriteWindows as a Hive dataset and finds
// start_time and end_time typed timestamp[ms, tz=UTC], equal to start_ms
// and end_ms, and a filter on start_time that selects by time.
func TestPyarrowSeesTimestamps(t *testing.T) {
	py := os.Getenv("EBBFLOW_TEST_PYTHON")
	if py == "" {
		t.Fatal("EBBFLOW_TEST_PYTHON is not set: it must name the venv python with pyarrow (make test sets it)")
	}
	root := t.TempDir()
	ws := goldenWindows() // two windows at 2026-03-01 10:00Z, one at 11:00Z
	if _, err := WriteWindows(context.Background(), LocalFS{}, root, ws, "part-py.parquet"); err != nil {
		t.Fatal(err)
	}
	const script = `
import sys, datetime
import pyarrow as pa, pyarrow.dataset as ds, pyarrow.compute as pc
d = ds.dataset(sys.argv[1] + "/windows", format="parquet", partitioning="hive")
want = pa.timestamp("ms", tz="UTC")
for c in ("start_time", "end_time"):
    got = d.schema.field(c).type
    if got != want:
        sys.exit(f"{c} is {got}, want {want}")
t = d.to_table()
for c, ms in (("start_time", "start_ms"), ("end_time", "end_ms")):
    a = pc.cast(t[c], pa.int64()).to_pylist()
    b = t[ms].to_pylist()
    if a != b:
        sys.exit(f"{c} {a} != {ms} {b}")
cut = pa.scalar(datetime.datetime(2026, 3, 1, 11, 0, tzinfo=datetime.timezone.utc), type=want)
n = d.to_table(filter=pc.field("start_time") >= cut).num_rows
if n != 1:
    sys.exit(f"start_time >= 11:00Z selected {n} rows, want 1")
print("ok", t.num_rows)
`
	out, err := exec.Command(py, "-c", script, root).CombinedOutput()
	if err != nil {
		t.Fatalf("pyarrow check: %v\n%s", err, out)
	}
	if string(out) != "ok 3\n" {
		t.Fatalf("pyarrow check printed %q, want \"ok 3\"", out)
	}
}
