//go:build integration

package wire

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/training/kueue"
	"github.com/ebbflow/ebbflow/training/scheduler"
	"github.com/ebbflow/ebbflow/ui"
)

// TestUITrainingQueueOnRealKueue: two training jobs submitted through the
// CLI's (and the form's) path, SubmitTraining, to the real Kueue on the real
// kube-apiserver — the first fills the department's a100 quota and is
// admitted, the second waits for quota — appear on the UI's training page
// served with UISources as `ebbflow ui` wires it: the admitted one without
// score terms, the waiting one with its score terms (base, wait credit,
// util penalty, total) and Kueue's own reason for waiting, read from its
// Workload.
func TestUITrainingQueueOnRealKueue(t *testing.T) {
	cluster.RequireKueue(t)
	s := cluster.NewScope(t)
	kubeconfig := os.Getenv(cluster.EnvKubeconfig)

	// Kueue objects as `ebbflow training setup` renders them, scoped.
	base := scheduler.DefaultConfig()
	base.GPUModels = []scheduler.GPUModel{
		{Name: "a100", MemoryMiB: 81920, NodeLabelValue: cluster.GroupA100.GPUProduct},
		{Name: "t4", MemoryMiB: 16384, NodeLabelValue: cluster.GroupT4.GPUProduct},
	}
	base.Departments = []scheduler.Department{
		{Name: "research", Namespace: s.Namespace, LocalQueue: "research", Quota: map[string]int{"a100": 8}},
		{Name: "product", Namespace: s.Namespace, LocalQueue: "product", Quota: map[string]int{"t4": 4}},
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	s.ApplyKueueObjects(kueue.SetupObjects(base, "64", "512Gi"))
	tc := s.KueueConfig(base)

	cfg := Default()
	cfg.Kubernetes.Kubeconfig, cfg.Kubernetes.Cluster = kubeconfig, "c1"
	cfg.History.Backend, cfg.History.Root = "local", t.TempDir()
	cfg.Training = tc

	// Submitted as `ebbflow training submit` (and the UI's form) does.
	ctx := s.Context()
	submit := func(family string) TrainingSubmission {
		doc := fmt.Sprintf("department: %s\nuser: it\nfamily: %s\nimage: registry.invalid/train:1\ncommand: [\"train\"]\n"+
			"gpus:\n  count: 8\n  model: %s\ncpu: \"1\"\nmemory: 1Gi\nexpected_duration: 1h\n", s.KueueName("research"), family, s.KueueName("a100"))
		sub, err := SubmitTraining(ctx, cfg, strings.NewReader(doc), false)
		if err != nil {
			t.Fatalf("submit %s: %v", family, err)
		}
		if !sub.Created {
			t.Fatalf("submit %s: not created", family)
		}
		return sub
	}
	first := submit("fam-first")
	s.WaitWorkload(first.Job.Name, 2*time.Minute, "the first job admitted", func(w cluster.Workload) bool { return w.Admitted() })
	// No wait for the ClusterQueue's status (Kueue updates it a moment after
	// admitting): the second job, planned at once, must see the quota taken,
	// because ReadUsage also counts the admitted Workload itself.
	kc, err := KueueClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	second := submit("fam-second")
	waiting := s.WaitWorkload(second.Job.Name, 2*time.Minute, "Kueue to say why the second job waits", func(w cluster.Workload) bool {
		c, ok := w.Conditions["QuotaReserved"]
		return ok && c.Status == "False" && c.Message != ""
	})
	kueueWhy := waiting.Conditions["QuotaReserved"].Message

	e := &Env{Cfg: cfg} // no Clock: a real cluster, the queue comes from Kueue
	src := UISources(e)
	if src.Queue == nil {
		t.Fatalf("UISources wired no queue: %v", src.QueueErr)
	}
	srv, err := ui.NewServer(cfg.UI, ui.NewStore(100, 100), src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/training", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/training: %d %s", w.Code, w.Body)
	}
	page := w.Body.String()
	row := func(job string) string {
		id := "j-" + s.Namespace + "-" + job
		m := regexp.MustCompile(`<tr id="` + regexp.QuoteMeta(id) + `">(.*?)</tr>`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no queue row %s on the page:\n%s", id, page)
		}
		return html.UnescapeString(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[1], " "))
	}
	adm := row(first.Job.Name)
	for _, want := range []string{s.Namespace + "/" + first.Job.Name, s.KueueName("research"), " 8 ", s.KueueName("a100"), "admitted"} {
		if !strings.Contains(adm, want) {
			t.Errorf("admitted row %q lacks %q", adm, want)
		}
	}
	if strings.Contains(adm, "base)") {
		t.Errorf("admitted row shows score terms: %q", adm)
	}
	wait := row(second.Job.Name)
	t.Logf("admitted row: %s", adm)
	t.Logf("waiting row: %s", wait)
	terms := regexp.MustCompile(`(-?\d+) \((\w+) base\) \+ (\d+) \(waited \d+ min\) − (\d+) \(dept util [^)]+\) = (-?\d+)`).FindStringSubmatch(wait)
	if terms == nil {
		t.Fatalf("waiting row %q has no score terms", wait)
	}
	var b, c, p, total int64
	fmt.Sscan(terms[1], &b)
	fmt.Sscan(terms[3], &c)
	fmt.Sscan(terms[4], &p)
	fmt.Sscan(terms[5], &total)
	if b+c-p != total || b <= 0 {
		t.Errorf("score terms %q do not add up", terms[0])
	}
	for _, want := range []string{"waiting", kueueWhy} {
		if !strings.Contains(wait, want) {
			t.Errorf("waiting row %q lacks %q (Kueue's QuotaReserved message)", wait, want)
		}
	}
	// Planned while the quota was full: it borrows.
	if terms[2] != string(scheduler.Borrowing) {
		t.Errorf("waiting job's standing %q, want %s (the department's a100 quota was in use)", terms[2], scheduler.Borrowing)
	}
	// The page's rows are QueueRows' (what `ebbflow training queue` prints).
	wls, err := kc.ListWorkloads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows := QueueRows(cfg.Training, wls, time.Now())
	if len(rows) != 2 {
		t.Fatalf("QueueRows: %d rows, want 2: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.Job == second.Job.Name && (r.Why == "" || !strings.Contains(wait, r.Why) || r.State != "waiting") {
			t.Errorf("QueueRows row %+v is not what the page shows: %q", r, wait)
		}
	}
}
