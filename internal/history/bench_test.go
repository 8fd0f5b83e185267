package history

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/ebbflow/ebbflow/schemas"
)

// BenchmarkWriteWindows writes one transaction's worth of windows (500
// windows, one hour partition) to a local directory.
func BenchmarkWriteWindows(b *testing.B) {
	ws := make([]schemas.Window, 500)
	for i := range ws {
		r := float64(i)
		ws[i] = schemas.Window{Entity: fmt.Sprintf("svc/c/n/app%d", i/2), Signal: "qps", Kind: "counter", SizeS: 60,
			StartMs: t0, EndMs: t0 + 60_000, Count: 4, Sum: r, Min: 1, Max: r, Mean: r / 4, Last: r, P50: r, P95: r, P99: r, Rate: &r}
	}
	root := b.TempDir()
	b.ReportAllocs()
	var paths []string
	for i := 0; i < b.N; i++ {
		var err error
		if paths, err = WriteWindows(context.Background(), LocalFS{}, root, ws, "part.parquet"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st, err := os.Stat(paths[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size()), "file-bytes")
}
