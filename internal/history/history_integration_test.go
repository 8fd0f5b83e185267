//go:build integration

package history

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/schemas"
)

// hdfsForTest connects to the real HDFS that `make test` starts.
func hdfsForTest(t *testing.T) (*HDFS, string) {
	t.Helper()
	nn := os.Getenv("EBBFLOW_TEST_HDFS_NAMENODE")
	if nn == "" {
		t.Fatal("EBBFLOW_TEST_HDFS_NAMENODE is not set: run `make test` (deploy/dev/services.sh up writes .dev/services.env)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fsys, err := Open(ctx, Config{Backend: BackendHDFS, Root: "/", NameNodes: []string{nn}})
	if err != nil {
		t.Fatal(err)
	}
	h := fsys.(*HDFS)
	root := fmt.Sprintf("/ebbflow-test/history-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_ = h.Client().RemoveAll(root)
		h.Close()
	})
	return h, root
}

func TestHDFSWriteReadRewrite(t *testing.T) {
	h, root := hdfsForTest(t)
	ctx := context.Background()
	in := []schemas.Window{
		win("svc/c1/ns/web", "qps", 60, t0, 0, 4, ptr(12.5)),
		win("svc/c1/ns/web", "qps", 60, t0+60_000, 0, 4, ptr(0)),
		win("svc/c1/ns/web", "memory", 15, t0, 0, 8, nil),
	}
	for i := 0; i < 2; i++ { // the second write replaces, never duplicates
		paths, err := WriteWindows(ctx, h, root, in, "part-p1-o5-9.parquet")
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != 3 {
			t.Fatalf("want 3 partition files, got %v", paths)
		}
	}
	revised := win("svc/c1/ns/web", "qps", 60, t0, 1, 5, ptr(13))
	if _, err := WriteWindows(ctx, h, root, []schemas.Window{revised}, "part-p1-o10-12.parquet"); err != nil {
		t.Fatal(err)
	}
	got, err := ReadWindows(ctx, h, root, Query{})
	if err != nil {
		t.Fatal(err)
	}
	want := []schemas.Window{in[2], revised, in[1]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back from HDFS:\n got %+v\nwant %+v", got, want)
	}
	// A leftover temporary file is invisible and a new Create replaces it.
	dir := PartitionDir(root, 60, t0)
	w, err := h.Create(TempName(dir, "part-p1-o13-20.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got2, err := ReadWindows(ctx, h, root, Query{})
	if err != nil || len(got2) != 3 {
		t.Fatalf("with a leftover temp file: got %d windows, %v", len(got2), err)
	}
}
