package ui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbflow/ebbflow/schemas"
)

// The recorded events: what a dev run puts on the topics for one service
// over 20 minutes, a node handover, training decisions, actions, an alert.
// They go through Store.Add as the consumer feeds it (encoded, with the
// CloudEvents type the header carries).

var (
	t0     = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixMilli()
	entity = schemas.ServiceEntity("dev", "inference", "chat-llm")
	other  = schemas.ServiceEntity("dev", "inference", "image-embed")
	minute = time.Minute.Milliseconds()
)

func add(t *testing.T, s *Store, base string, ev schemas.Event) {
	t.Helper()
	b, err := schemas.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(base, ev.EventType(), b); err != nil {
		t.Fatalf("add %s: %v", ev.EventType(), err)
	}
}

func window(e, signal string, i int, v float64) schemas.Window {
	start := t0 + int64(i)*minute
	return schemas.Window{Entity: e, Signal: signal, Kind: schemas.KindGauge, SizeS: 60, StartMs: start, EndMs: start + minute,
		Revision: 0, Count: 4, Sum: 4 * v, Min: v, Max: v, Mean: v, Last: v, P50: v, P95: v, P99: v}
}

func recorded(t *testing.T) *Store {
	s := NewStore(100, 100)
	for i := range 20 {
		load := 100 + 10*float64(i)
		add(t, s, schemas.TopicMetricsWindows, window(entity, schemas.SignalQPS, i, load))
		add(t, s, schemas.TopicMetricsWindows, window(entity, schemas.SignalReplicas, i, float64(2+i/5)))
		add(t, s, schemas.TopicMetricsWindows, window(other, schemas.SignalQPS, i, 50))
		origin := t0 + int64(i+1)*minute
		f := schemas.Forecast{ID: fmt.Sprintf("f%d", i), Entity: entity, Signal: schemas.SignalQPS, OriginMs: origin, StepS: 60,
			Observed: load, Model: schemas.ModelRef{ID: "xgb-qps", Version: "1", FeatureSpec: "v1"}}
		for h := 1; h <= 3; h++ {
			f.Horizons = append(f.Horizons, schemas.HorizonValue{Minutes: h, AtMs: origin + int64(h)*minute, Value: load + 10*float64(h) + 1})
		}
		add(t, s, schemas.TopicForecasts, f)
	}
	for i, to := range []int32{3, 4, 5} {
		add(t, s, schemas.TopicDecisions, schemas.ScaleDecision{ID: fmt.Sprintf("dec-%d", i), Kind: schemas.DecisionScale, Seq: int64(i + 1),
			Target: schemas.Target{Cluster: "dev", Namespace: "inference", Kind: "Deployment", Name: "chat-llm"}, Entity: entity,
			AtMs: t0 + int64(5*(i+1))*minute, ExpiresMs: t0 + int64(5*(i+1)+10)*minute, From: to - 1, To: to,
			Reason: schemas.Reason{Summary: fmt.Sprintf("qps forecast needs %d replicas (scale-up %d)", to, i), Formula: "ceil(used/(expect_rate*capacity))",
				HorizonMinutes: 2, Demands: []schemas.SignalDemand{{Signal: "qps", Current: 50, Predicted: 60, Used: 60, ExpectRate: 0.7, Desired: to, Source: "forecast"}},
				Inputs: map[string]float64{"max_replicas": 10, "replicas": float64(to - 1)}},
			DecidedBy: "autoscale"})
	}
	add(t, s, schemas.TopicDecisions, schemas.NodesDecision{ID: "nodes-1", Kind: schemas.DecisionNodes, Seq: 1,
		Target: schemas.NodeGroupTarget("dev", "gpu-a"), Group: "gpu-a", AtMs: t0 + 8*minute, ExpiresMs: t0 + 20*minute,
		Direction: "to-offline", Nodes: []schemas.NodeFlip{{Node: "node-2", From: "online", To: "offline", Why: "idlest node: no inference pod"}},
		Reason: schemas.NodesReason{Summary: "inference utilisation below min rate for the dwell", Code: "UtilisationBelowMinRateForDwell",
			Thresholds: map[string]float64{"min_rate": 0.3, "max_rate": 0.8, "expect_rate": 0.6, "lead_time_s": 600},
			Inputs:     map[string]float64{"utilisation": 0.1, "online": 2, "offline": 0, "required": 1}}, DecidedBy: "mixing"})
	train := func(id, action, guard, by string, at int64) schemas.TrainingDecision {
		return schemas.TrainingDecision{ID: id, Kind: schemas.DecisionTraining, Seq: 1, Target: schemas.Target{Cluster: "dev", Namespace: "research", Kind: "Job", Name: "bert-" + id},
			Action: action, AtMs: at, ExpiresMs: at + 10*minute,
			Job:    schemas.TrainingJob{Name: "bert-" + id, Namespace: "research", Department: "research", Family: "bert", Pool: "fixed", Models: []string{"a100"}, Model: "a100", RequestedGPUs: 4, GPUs: 4},
			Score:  schemas.TrainingScore{Standing: "within_quota", Base: 1000000, WaitCredit: 120, UtilPenalty: 30, Total: 1000090, WaitedMinutes: 12, DeptUtil: 0.4},
			Reason: schemas.TrainingReason{Summary: "score written as Workload priority " + id, Guard: guard, PreemptedBy: by}, DecidedBy: "training"}
	}
	add(t, s, schemas.TopicDecisions, train("t1", schemas.TrainingAdmit, "", "", t0+9*minute))
	add(t, s, schemas.TopicDecisions, train("t2", schemas.TrainingPreempt, "min_runtime", "research/bert-t1", t0+10*minute))
	b1, a1 := int32(2), int32(3)
	add(t, s, schemas.TopicActions, schemas.Action{ID: "a1", DecisionID: "dec-0", DecisionKind: schemas.DecisionScale, Seq: 1,
		Target: schemas.Target{Cluster: "dev", Namespace: "inference", Kind: "Deployment", Name: "chat-llm"}, Outcome: schemas.OutcomeApplied,
		Reason: "scaled 2 → 3", AtMs: t0 + 5*minute, Attempts: 1, Actuator: "scale", Before: &b1, After: &a1})
	add(t, s, schemas.TopicActions, schemas.Action{ID: "a2", DecisionID: "nodes-1", DecisionKind: schemas.DecisionNodes, Seq: 1,
		Target: schemas.NodeGroupTarget("dev", "gpu-a"), Outcome: schemas.OutcomeFailed, Reason: "evict node-2", Error: "eviction refused by PDB",
		AtMs: t0 + 8*minute, Attempts: 3, Actuator: "nodes"})
	b, _ := schemas.Marshal(schemas.Alert{ID: "al1", Severity: "warning", Kind: schemas.AlertMaxReplicas, Summary: "chat-llm pinned at max replicas",
		Entity: entity, AtMs: t0 + 15*minute, Source: "/ebbflow/autoscale"})
	if err := s.Add(kindAlert, "io.ebbflow.alert.v1", b); err != nil {
		t.Fatal(err)
	}
	return s
}

func node(name, group, pool, handover string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"ebbflow.io/node-group": group, labelPool: pool}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	if handover != "" {
		n.Labels[labelHandover] = handover
		n.Spec.Unschedulable = true
	}
	return n
}

type formCall struct {
	doc   string
	check bool
}

func newTestServer(t *testing.T, cfg Config, s *Store) (*Server, *[]formCall) {
	t.Helper()
	var calls []formCall
	src := Sources{
		Kube: fake.NewClientset(node("node-1", "gpu-a", "online", ""), node("node-2", "gpu-a", "offline", ""), node("node-3", "gpu-a", "online", "to-offline")),
		Queue: func(context.Context) ([]QueueJob, error) {
			return []QueueJob{{Namespace: "research", Job: "bert-t3", Department: "research", GPUs: 4, Flavor: "a100?", Priority: 1000090,
				State: "waiting", Terms: "1000000 + 120 − 30 = 1000090 (within_quota)", Why: "Pending: insufficient quota for nvidia.com/gpu in flavor a100"}}, nil
		},
		SubmitTraining: func(_ context.Context, doc []byte, dry bool) (FormResult, error) {
			calls = append(calls, formCall{string(doc), dry})
			if strings.Contains(string(doc), "bad") {
				return FormResult{}, errors.Join(errors.New("gpus.count: must be at least 1 (line 3)"), errors.New("department: \"nope\" is not configured"))
			}
			return FormResult{Summary: "created job research/bert-x", Lines: []string{"score: 1000000"}}, nil
		},
		RegisterModel: func(_ context.Context, doc []byte, check bool) (FormResult, error) {
			calls = append(calls, formCall{string(doc), check})
			return FormResult{Summary: "registered"}, nil
		},
	}
	srv, err := NewServer(cfg, s, src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return srv, &calls
}

func testConfig() Config {
	c := DefaultConfig()
	c.Token = "s3cret"
	return c
}

// get serves one request and parses the page.
func get(t *testing.T, h http.Handler, target string, hdr ...string) (*html.Node, *httptest.ResponseRecorder) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	doc, err := html.Parse(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatalf("%s: not HTML: %v", target, err)
	}
	return doc, w
}

// find returns every element named tag whose attributes include attrs
// (name, value prefix pairs).
func find(n *html.Node, tag string, attrs ...string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag && hasAttrs(n, attrs) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func hasAttrs(n *html.Node, attrs []string) bool {
	for i := 0; i+1 < len(attrs); i += 2 {
		if !strings.HasPrefix(attr(n, attrs[i]), attrs[i+1]) || attr(n, attrs[i]) == "" && attrs[i+1] != "" {
			return false
		}
	}
	return true
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data + " ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func byID(doc *html.Node, id string) *html.Node {
	var found *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if found != nil {
			return
		}
		if n.Type == html.ElementNode && attr(n, "id") == id {
			found = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return found
}

func mustContain(t *testing.T, where, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: %q not in %q", where, w, got)
		}
	}
}

func TestOverviewPage(t *testing.T) {
	srv, _ := newTestServer(t, testConfig(), recorded(t))
	doc, w := get(t, srv.Handler(), "/")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Security-Policy"); !strings.Contains(ct, "default-src 'self'") {
		t.Errorf("CSP %q", ct)
	}
	// Skip link first, main target exists.
	if a := find(doc, "a", "class", "skip"); len(a) != 1 || attr(a[0], "href") != "#main" || byID(doc, "main") == nil {
		t.Error("no skip link to #main")
	}
	links := find(doc, "a", "href", "/service?entity=")
	if len(links) < 2 {
		t.Fatalf("service links: %d", len(links))
	}
	u, _ := url.Parse(attr(links[0], "href"))
	if u.Query().Get("entity") != entity {
		t.Errorf("first service link %q, want entity %s", attr(links[0], "href"), entity)
	}
	body := text(doc)
	mustContain(t, "overview", body,
		"chat-llm", "290.0", // latest qps: 100 + 10×19
		"4 → 5", "scale-up 2", // last decision and its reason
		"gpu-a",                                       // node group
		"1 waiting, 0 admitted", "insufficient quota", // queue
		"node-2", "to-offline", // node decision in recent decisions
		"bert-t2", "chat-llm pinned at max replicas", "2 actions (1 failed)")
	if len(find(doc, "a", "href", "/nodes#g-gpu-a")) != 1 || len(find(doc, "a", "href", "/training#j-research-bert-t3")) != 1 {
		t.Error("overview does not link on to the node group and the queued job")
	}
	// The group row counts pools from the API server: 2 online, 1 offline, 1 in handover.
	row := find(doc, "a", "href", "/nodes#g-gpu-a")[0].Parent.Parent
	if got := text(row); got != "gpu-a 3 2 1 0 1" {
		t.Errorf("group row %q", got)
	}
	if live := find(doc, "div", "data-fragment", "/fragment/overview"); len(live) != 1 || !strings.Contains(attr(live[0], "data-live"), "decision") {
		t.Error("overview has no live region")
	}
}

func TestServicePage(t *testing.T) {
	srv, _ := newTestServer(t, testConfig(), recorded(t))
	doc, w := get(t, srv.Handler(), "/service?entity="+url.QueryEscape(entity))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	svgs := find(doc, "svg", "class", "chart")
	if len(svgs) != 3 {
		t.Fatalf("%d charts, want load, replicas, error", len(svgs))
	}
	series := map[string]int{}
	for _, p := range find(svgs[0], "polyline") {
		series[attr(p, "data-series")] = len(strings.Fields(attr(p, "points")))
	}
	if series["actual qps"] != 20 || series["forecast +1 min"] != 20 || series["forecast +3 min"] != 20 {
		t.Errorf("load chart series %v", series)
	}
	markers := find(svgs[0], "g", "class", "marker")
	if len(markers) != 3 {
		t.Fatalf("%d decision markers, want 3", len(markers))
	}
	mustContain(t, "marker", text(markers[2]), "4 → 5", "scale-up 2")
	if a := markers[2].Parent; a.Data != "a" || attr(a, "href") != "#d-dec-2" {
		t.Errorf("marker does not link to its decision: %v %q", a.Data, attr(a, "href"))
	}
	d := byID(doc, "d-dec-2")
	if d == nil {
		t.Fatal("no decision d-dec-2 on the timeline")
	}
	mustContain(t, "decision", text(d), "replicas 4 → 5", "scale-up 2", "ceil(used/(expect_rate*capacity))", "current 50.00, predicted 60.00", "max_replicas=10")
	// Forecast error: every forecast is 10h+1 off... of the actual h minutes later,
	// which grew 10/min: forecast error 1, last value error 10h.
	rows := find(doc, "tbody")
	var errRow string
	for _, tb := range rows {
		if s := text(tb); strings.HasPrefix(s, "+1 min") {
			errRow = s
		}
	}
	if !strings.HasPrefix(errRow, "+1 min 19 1.00 10.00 0.10") {
		t.Errorf("error table %q", errRow)
	}
	var rep []string
	for _, p := range find(svgs[1], "polyline") {
		rep = append(rep, attr(p, "data-series"))
	}
	if strings.Join(rep, ",") != "replicas (observed),replicas decided,max replicas (capacity bound)" {
		t.Errorf("replicas chart %v", rep)
	}
	// Unknown and malformed entities.
	if _, w := get(t, srv.Handler(), "/service?entity=svc/x"); w.Code != http.StatusBadRequest {
		t.Errorf("bad entity: %d", w.Code)
	}
	doc, w = get(t, srv.Handler(), "/service?entity="+url.QueryEscape(schemas.ServiceEntity("dev", "x", "none")))
	if w.Code != http.StatusOK || !strings.Contains(text(doc), "Nothing has been read") {
		t.Errorf("unknown service: %d %s", w.Code, text(doc))
	}
}

func TestNodesPage(t *testing.T) {
	srv, _ := newTestServer(t, testConfig(), recorded(t))
	doc, w := get(t, srv.Handler(), "/nodes")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	g := byID(doc, "g-gpu-a")
	if g == nil {
		t.Fatal("no group section")
	}
	mustContain(t, "group", text(g), "3 nodes: 2 online", "node-3 online to-offline yes cordoned")
	h := byID(doc, "d-nodes-1")
	if h == nil {
		t.Fatal("no handover d-nodes-1")
	}
	mustContain(t, "handover", text(h), "to-offline", "below min rate", "UtilisationBelowMinRateForDwell", "node-2", "online → offline", "idlest node", "min_rate=0.3")
	// node-2's pool over time: online until the handover, offline since.
	var tl *html.Node
	for _, tr := range find(doc, "tr") {
		if th := find(tr, "th"); len(th) == 1 && text(th[0]) == "node-2" && len(find(tr, "svg")) == 1 {
			tl = find(tr, "svg")[0]
		}
	}
	if tl == nil {
		t.Fatal("no timeline for node-2")
	}
	rects := find(tl, "rect")
	if len(rects) != 2 || attr(rects[0], "class") != "pool-online" || attr(rects[1], "class") != "pool-offline" {
		t.Errorf("node-2 timeline %d rects", len(rects))
	}
}

func TestTrainingPage(t *testing.T) {
	srv, _ := newTestServer(t, testConfig(), recorded(t))
	doc, w := get(t, srv.Handler(), "/training")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	j := byID(doc, "j-research-bert-t3")
	if j == nil {
		t.Fatal("no queued job row")
	}
	mustContain(t, "queue", text(j), "1000000 + 120 − 30 = 1000090", "insufficient quota")
	d := byID(doc, "d-t2")
	if d == nil {
		t.Fatal("no decision row d-t2")
	}
	mustContain(t, "decision", text(d), "preempt", "1000090 = 1000000 + 120 − 30", "within_quota", "guard: min_runtime", "for research/bert-t1")
	if l := find(doc, "a", "href", "#d-t2"); len(l) != 1 {
		t.Error("pre-emption list does not link to the decision")
	}
	// Without Kueue the page says why.
	srv.src.Queue, srv.src.QueueErr = nil, errors.New("no kueue here")
	doc, _ = get(t, srv.Handler(), "/training")
	mustContain(t, "no queue", text(doc), "Unavailable: no kueue here", "bert-t2")
}

func TestActionsFilters(t *testing.T) {
	srv, _ := newTestServer(t, testConfig(), recorded(t))
	rows := func(q string) []string {
		doc, w := get(t, srv.Handler(), "/actions"+q)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d", q, w.Code)
		}
		var out []string
		for _, tb := range find(doc, "table", "class", "actions") {
			for _, tr := range find(tb, "tr", "class", "outcome-") {
				out = append(out, text(tr))
			}
		}
		return out
	}
	if r := rows(""); len(r) != 2 {
		t.Errorf("all: %v", r)
	}
	if r := rows("?kind=nodes"); len(r) != 1 || !strings.Contains(r[0], "eviction refused by PDB") {
		t.Errorf("kind=nodes: %v", r)
	}
	if r := rows("?outcome=applied"); len(r) != 1 || !strings.Contains(r[0], "2 → 3") {
		t.Errorf("outcome=applied: %v", r)
	}
	if r := rows("?target=chat"); len(r) != 1 || !strings.Contains(r[0], "chat-llm") {
		t.Errorf("target=chat: %v", r)
	}
	if r := rows("?kind=scale&outcome=failed"); len(r) != 0 {
		t.Errorf("scale+failed: %v", r)
	}
	if _, w := get(t, srv.Handler(), "/actions?kind=bogus"); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "must be one of") {
		t.Errorf("bad kind: %d %s", w.Code, w.Body)
	}
	// The filter form is keyboard-usable: labelled controls.
	doc, _ := get(t, srv.Handler(), "/actions?kind=nodes")
	for _, id := range []string{"f-kind", "f-outcome", "f-target"} {
		if len(find(doc, "label", "for", id)) != 1 || byID(doc, id) == nil {
			t.Errorf("control %s has no label", id)
		}
	}
}

func TestFragments(t *testing.T) {
	srv, _ := newTestServer(t, testConfig(), recorded(t))
	for name, q := range map[string]string{"overview": "", "service": "?entity=" + url.QueryEscape(entity), "nodes": "", "training": "", "actions": "?kind=scale"} {
		_, w := get(t, srv.Handler(), "/fragment/"+name+q)
		if w.Code != http.StatusOK {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
			continue
		}
		body := w.Body.String()
		if strings.Contains(body, "<html") || strings.Contains(body, "<nav") {
			t.Errorf("%s: fragment carries the page layout", name)
		}
	}
	_, w := get(t, srv.Handler(), "/fragment/service?entity="+url.QueryEscape(entity))
	if !strings.Contains(w.Body.String(), `data-series="actual qps"`) || !strings.Contains(w.Body.String(), `id="d-dec-2"`) {
		t.Error("service fragment lacks the chart or the decisions")
	}
	if _, w := get(t, srv.Handler(), "/fragment/nope"); w.Code != http.StatusNotFound {
		t.Errorf("unknown fragment: %d", w.Code)
	}
	// Each page's live region points at its own fragment.
	doc, _ := get(t, srv.Handler(), "/service?entity="+url.QueryEscape(entity))
	if r := find(doc, "div", "data-live", ""); len(r) != 1 || attr(r[0], "data-entity") != entity ||
		attr(r[0], "data-fragment") != "/fragment/service?entity="+url.QueryEscape(entity) {
		t.Errorf("service live region %v", r)
	}
}

// csrfOf reads the form's CSRF token from its page.
func csrfOf(t *testing.T, h http.Handler, path string) string {
	doc, w := get(t, h, path)
	if w.Code != http.StatusOK {
		t.Fatalf("%s: %d", path, w.Code)
	}
	in := find(doc, "input", "name", "csrf")
	if len(in) != 1 || attr(in[0], "value") == "" {
		t.Fatalf("%s: no csrf field", path)
	}
	return attr(in[0], "value")
}

func post(h http.Handler, path string, form url.Values, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestFormsRefuseWithoutTokenOrCSRF(t *testing.T) {
	srv, calls := newTestServer(t, testConfig(), recorded(t))
	h := srv.Handler()
	csrf := csrfOf(t, h, "/forms/training")
	ok := url.Values{"doc": {"department: research"}, "csrf": {csrf}, "token": {"s3cret"}}
	cases := []struct {
		name string
		form url.Values
		hdr  []string
		code int
		want string
	}{
		{"no token", url.Values{"doc": {"x"}, "csrf": {csrf}}, nil, http.StatusUnauthorized, "needs the bearer token"},
		{"wrong token", url.Values{"doc": {"x"}, "csrf": {csrf}, "token": {"guess"}}, nil, http.StatusUnauthorized, "needs the bearer token"},
		{"no csrf", url.Values{"doc": {"x"}, "token": {"s3cret"}}, nil, http.StatusForbidden, "CSRF"},
		{"forged csrf", url.Values{"doc": {"x"}, "token": {"s3cret"}, "csrf": {"1700000000.AAAA"}}, nil, http.StatusForbidden, "CSRF"},
		{"csrf of the other form", url.Values{"doc": {"x"}, "token": {"s3cret"}, "csrf": {csrfOf(t, h, "/forms/model")}}, nil, http.StatusForbidden, "CSRF"},
		{"cross origin", ok, []string{"Origin", "https://evil.example"}, http.StatusForbidden, "cross-origin"},
		{"cross referer", ok, []string{"Referer", "https://evil.example/x"}, http.StatusForbidden, "cross-origin"},
	}
	for _, c := range cases {
		w := post(h, "/forms/training", c.form, c.hdr...)
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %q, want %d %q", c.name, w.Code, w.Body, c.code, c.want)
		}
	}
	if len(*calls) != 0 {
		t.Fatalf("a refused form reached its action: %v", *calls)
	}
	// Same origin, the field token: accepted.
	w := post(h, "/forms/training", ok, "Origin", "http://example.com")
	if w.Code != http.StatusOK || len(*calls) != 1 {
		t.Fatalf("good form: %d %s", w.Code, w.Body)
	}
	// The header token works without the field.
	w = post(h, "/forms/model", url.Values{"doc": {"name: m"}, "csrf": {csrfOf(t, h, "/forms/model")}}, "Authorization", "Bearer s3cret")
	if w.Code != http.StatusOK || len(*calls) != 2 {
		t.Fatalf("header token: %d %s", w.Code, w.Body)
	}
	// No token configured: changes are disabled.
	srv2, calls2 := newTestServer(t, DefaultConfig(), recorded(t))
	h2 := srv2.Handler()
	w = post(h2, "/forms/training", url.Values{"doc": {"x"}, "csrf": {csrfOf(t, h2, "/forms/training")}, "token": {""}})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "changes are disabled") || len(*calls2) != 0 {
		t.Errorf("no token configured: %d %s", w.Code, w.Body)
	}
	// An expired CSRF token.
	srv.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	w = post(h, "/forms/training", ok)
	if w.Code != http.StatusForbidden {
		t.Errorf("expired csrf: %d", w.Code)
	}
}

func TestFormShowsValidationErrors(t *testing.T) {
	srv, calls := newTestServer(t, testConfig(), recorded(t))
	h := srv.Handler()
	w := post(h, "/forms/training", url.Values{"doc": {"department: bad"}, "check": {"1"}, "csrf": {csrfOf(t, h, "/forms/training")}, "token": {"s3cret"}})
	if w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", w.Code)
	}
	doc, _ := html.Parse(strings.NewReader(w.Body.String()))
	e := byID(doc, "form-errors")
	if e == nil || attr(e, "role") != "alert" {
		t.Fatal("no error list with role=alert")
	}
	mustContain(t, "errors", text(e), "gpus.count: must be at least 1 (line 3)", `department: "nope" is not configured`)
	ta := byID(doc, "doc")
	if ta == nil || text(ta) != "department: bad" || attr(ta, "aria-invalid") != "true" || attr(ta, "aria-describedby") != "form-errors" {
		t.Error("the textarea does not keep the spec or point at the errors")
	}
	if len(*calls) != 1 || !(*calls)[0].check {
		t.Errorf("calls %v", *calls)
	}
	// A new CSRF token comes with the re-rendered form.
	if in := find(doc, "input", "name", "csrf"); len(in) != 1 || !srv.checkCSRF("training", attr(in[0], "value")) {
		t.Error("re-rendered form has no valid csrf token")
	}
	// Empty spec: an error on the form, the action not called.
	w = post(h, "/forms/training", url.Values{"doc": {"  "}, "csrf": {csrfOf(t, h, "/forms/training")}, "token": {"s3cret"}})
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "spec: must not be empty") || len(*calls) != 1 {
		t.Errorf("empty spec: %d", w.Code)
	}
}

func TestReadTokenRequiredWhenConfigured(t *testing.T) {
	cfg := testConfig()
	cfg.RequireTokenForRead = true
	srv, _ := newTestServer(t, cfg, recorded(t))
	h := srv.Handler()
	for _, p := range []string{"/", "/service?entity=" + url.QueryEscape(entity), "/nodes", "/training", "/actions", "/events", "/fragment/overview", "/forms/model"} {
		if _, w := get(t, h, p); w.Code != http.StatusUnauthorized {
			t.Errorf("%s without token: %d", p, w.Code)
		}
	}
	if _, w := get(t, h, "/", "Authorization", "Bearer s3cret"); w.Code != http.StatusOK {
		t.Errorf("with token: %d", w.Code)
	}
	if _, w := get(t, h, "/static/style.css"); w.Code != http.StatusOK {
		t.Errorf("static: %d", w.Code)
	}
	// Default: read-only pages are open.
	srv2, _ := newTestServer(t, testConfig(), recorded(t))
	if _, w := get(t, srv2.Handler(), "/"); w.Code != http.StatusOK {
		t.Errorf("open read: %d", w.Code)
	}
}

func TestEventStreamDeliversUpdate(t *testing.T) {
	s := recorded(t)
	srv, _ := newTestServer(t, testConfig(), s)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	// The stream is open once its preamble arrives; then a new decision.
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("preamble %q %v", line, err)
	}
	add(t, s, schemas.TopicDecisions, schemas.ScaleDecision{ID: "dec-new", Kind: schemas.DecisionScale, Seq: 9,
		Target: schemas.Target{Cluster: "dev", Namespace: "inference", Kind: "Deployment", Name: "chat-llm"}, Entity: entity,
		AtMs: t0 + 30*minute, ExpiresMs: t0 + 40*minute, From: 5, To: 6,
		Reason: schemas.Reason{Summary: "live", Formula: "f", Demands: []schemas.SignalDemand{}}, DecidedBy: "autoscale"})
	var ev, data string
	for ev != "update" || data == "" {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			ev = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok && ev == "update" {
			data = v
		}
	}
	if !strings.Contains(data, `"kind":"decision"`) || !strings.Contains(data, entity) {
		t.Errorf("update %s", data)
	}
	// The fragment the script then fetches shows the new decision.
	r, err := http.Get(ts.URL + "/fragment/service?entity=" + url.QueryEscape(entity))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), `id="d-dec-new"`) {
		t.Error("fragment lacks the new decision")
	}
}

func TestStoreIsBoundedAndCountsBadRecords(t *testing.T) {
	s := NewStore(10, 10)
	for i := range 50 {
		if _, err := s.AddWindow(window(entity, schemas.SignalQPS, i, float64(i))); err != nil {
			t.Fatal(err)
		}
		s.AddAction(schemas.Action{ID: fmt.Sprint(i), AtMs: int64(i)})
	}
	v, _ := s.Service(entity)
	if len(v.QPS) != 10 || v.QPS[9].Mean != 49 || v.QPS[0].Mean != 40 {
		t.Errorf("kept %d windows, newest %v", len(v.QPS), v.QPS[len(v.QPS)-1].Mean)
	}
	if n := len(s.Recent().Actions); n > 10 || n < 7 {
		t.Errorf("kept %d actions", n)
	}
	if err := s.Add(schemas.TopicForecasts, "io.ebbflow.forecast.v1", []byte(`{"id":1}`)); err == nil {
		t.Error("bad forecast accepted")
	}
	if err := s.Add(schemas.TopicDecisions, "io.ebbflow.decision.unknown.v1", []byte(`{}`)); err == nil {
		t.Error("unknown decision type accepted")
	}
	if s.Undecodable() != 2 {
		t.Errorf("undecodable %d", s.Undecodable())
	}
	// A lower revision of a window does not replace a higher one.
	w := window(other, schemas.SignalQPS, 0, 5)
	w.Revision = 2
	s.AddWindow(w)
	w.Revision, w.Mean = 1, 99
	s.AddWindow(w)
	if v, _ := s.Service(other); v.QPS[0].Mean != 5 {
		t.Errorf("revision 1 replaced revision 2")
	}
}

func TestChartSVG(t *testing.T) {
	c := Chart{Title: "Load", Series: []Series{{Name: "a", Class: "s1", Points: []Point{{0, 1}, {60000, 3}, {120000, 2}}}},
		Markers: []Marker{{T: 60000, Label: "up: because", Href: "#d-x", Class: "up"}}}
	doc, err := html.Parse(strings.NewReader(string(c.SVG())))
	if err != nil {
		t.Fatal(err)
	}
	if p := find(doc, "polyline"); len(p) != 1 || len(strings.Fields(attr(p[0], "points"))) != 3 {
		t.Fatal("no 3-point polyline")
	}
	if a := find(doc, "a", "href", "#d-x"); len(a) != 1 || !strings.Contains(text(a[0]), "up: because") {
		t.Error("marker")
	}
	if got := niceTicks(0, 97, 5); got[0] != 0 || got[len(got)-1] < 97 {
		t.Errorf("ticks %v", got)
	}
	empty := string(Chart{Title: "x"}.SVG())
	if !strings.Contains(empty, "no data yet") {
		t.Error("empty chart")
	}
	// Text is escaped.
	if s := string(Chart{Title: "<b>", Series: c.Series}.SVG()); strings.Contains(s, "<b>") {
		t.Error("title not escaped")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Listen = "" }, "listen"},
		{func(c *Config) { c.RequireTokenForRead = true }, "require_token_for_read"},
		{func(c *Config) { c.TLS.CertFile = "x" }, "tls.cert_file"},
		{func(c *Config) { c.Token, c.TokenFile = "a", "b" }, "token and token_file"},
		{func(c *Config) { c.PerService = 1 }, "per_service"},
	} {
		cfg := DefaultConfig()
		c.mut(&cfg)
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v", c.want, err)
		}
	}
}

func TestChartBreaksLineAtGap(t *testing.T) {
	m := minute
	c := Chart{Title: "gap", Series: []Series{{Name: "a", Class: "s1", Points: []Point{{0, 1}, {m, 2}, {2 * m, 3}, {10 * m, 4}, {11 * m, 5}}}}}
	doc, _ := html.Parse(strings.NewReader(string(c.SVG())))
	p := find(doc, "polyline")
	if len(p) != 2 || len(strings.Fields(attr(p[0], "points"))) != 3 || len(strings.Fields(attr(p[1], "points"))) != 2 {
		t.Fatalf("%d segments, want 2 (3 and 2 points)", len(p))
	}
}
