package servers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/schemas"
)

type recorder struct {
	got  []schemas.InferenceDecision
	fail error
}

func (r *recorder) Publish(_ context.Context, ds []schemas.InferenceDecision) error {
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, ds...)
	return nil
}

// TestLoopWatchesTheStore drives the loop over a real local directory
// through history.FS (the same interface HDFS is behind).
func TestLoopWatchesTheStore(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.StoreDir = dir
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	now := time.UnixMilli(1_800_000_000_000)
	l, err := NewLoop(cfg, Deps{Store: history.LocalFS{}, Publisher: rec, Cluster: "c1", Registerer: reg, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, file string, edit func(string) string) {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if edit != nil {
			s = edit(s)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(want ...string) {
		t.Helper()
		rec.got = nil
		if _, err := l.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range rec.got {
			got = append(got, d.Model.Name+" "+d.Action)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("published %v, want %v", got, want)
		}
	}
	write("resnet50.yaml", "resnet50-int8.yaml", nil)
	write("notes.txt", "ocr-ovms.yaml", nil) // not a spec file
	poll("resnet50 launch")
	poll()
	write("resnet50.yaml", "resnet50-int8.yaml", bump("4"))
	rec.fail = errors.New("broker down")
	if _, err := l.Poll(context.Background()); err == nil {
		t.Fatal("a failed publish was not reported")
	}
	rec.fail = nil
	poll("resnet50 update") // decided again after the failure
	seq := rec.got[0].Seq
	write("broken.yaml", "ocr-ovms.yaml", func(s string) string { return s + "bogus_field: 1\n" })
	poll()
	poll()
	if n := testutil.ToFloat64(l.m.guards.WithLabelValues(string(GuardInvalidSpec))); n != 1 {
		t.Errorf("invalid spec counted %v times over two polls, want once", n)
	}
	if err := os.Remove(filepath.Join(dir, "resnet50.yaml")); err != nil {
		t.Fatal(err)
	}
	poll("resnet50 retire")
	if rec.got[0].Seq <= seq {
		t.Errorf("seq %d not above the previous %d", rec.got[0].Seq, seq)
	}
	if n := testutil.ToFloat64(l.m.decisions.WithLabelValues(schemas.InferenceLaunch)); n != 1 {
		t.Errorf("launches counted %v", n)
	}
	// A store that cannot be listed retires nothing.
	l.cfg.StoreDir = filepath.Join(dir, "missing")
	if _, err := l.Poll(context.Background()); err == nil {
		t.Fatal("missing store not reported")
	}
}
