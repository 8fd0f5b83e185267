package history_test

import (
	"context"
	"fmt"
	"os"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/schemas"
)

func Example() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "history")
	defer os.RemoveAll(root)
	fsys, _ := history.Open(ctx, history.Config{Backend: history.BackendLocal, Root: root})

	rate := 12.5
	w := schemas.Window{Entity: "svc/c1/prod/web", Signal: "qps", Kind: "counter", SizeS: 60,
		StartMs: 1772359200000, EndMs: 1772359260000, Count: 4, Sum: 10, Min: 1, Max: 4, Mean: 2.5, Last: 4,
		P50: 2, P95: 4, P99: 4, Rate: &rate}
	paths, _ := history.WriteWindows(ctx, fsys, root, []schemas.Window{w}, "part-p0-o0-9.parquet")
	fmt.Println(paths[0][len(root):])

	ws, _ := history.ReadWindows(ctx, fsys, root, history.Query{SizeS: 60, Signals: []string{"qps"}})
	fmt.Println(len(ws), ws[0].Entity, ws[0].Value())
	// Output:
	// /windows/size=60s/dt=2026-03-01/hour=10/part-p0-o0-9.parquet
	// 1 svc/c1/prod/web 12.5
}
