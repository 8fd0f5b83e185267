package history

import (
	"context"
	"fmt"
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
	for i := 0; i < b.N; i++ {
		if _, err := WriteWindows(context.Background(), LocalFS{}, root, ws, "part.parquet"); err != nil {
			b.Fatal(err)
		}
	}
}
