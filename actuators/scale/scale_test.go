package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/schemas"
)

const testNow = int64(1_700_000_000_000)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func deployment(name string, replicas int32, ann map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod", Annotations: ann},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
	}
}

// fakeScale makes the fake clientset serve the scale subresource from the
// Deployment's spec.replicas (the fake tracker does not).
func fakeScale(cs *fake.Clientset) {
	cs.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		name := a.(k8stesting.GetAction).GetName()
		obj, err := cs.Tracker().Get(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, a.GetNamespace(), name)
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment)
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace, ResourceVersion: d.ResourceVersion},
			Spec: autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas}}, nil
	})
	cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		sc := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
		obj, err := cs.Tracker().Get(gvr, a.GetNamespace(), sc.Name)
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment).DeepCopy()
		d.Spec.Replicas = &sc.Spec.Replicas
		return true, sc, cs.Tracker().Update(gvr, d, a.GetNamespace())
	})
}

func decision(seq int64, to int32) schemas.ScaleDecision {
	t := schemas.Target{Cluster: "c1", Namespace: "prod", Kind: "Deployment", Name: "web"}
	return schemas.ScaleDecision{
		ID: "scale/" + t.Key() + "/" + time.UnixMilli(seq).UTC().Format("150405.000"), Kind: schemas.DecisionScale, Seq: seq, Target: t,
		Entity: "svc/c1/prod/web", AtMs: seq, ExpiresMs: seq + 120_000, From: 2, To: to,
		Reason:    schemas.Reason{Summary: "test", Formula: "ceil", HorizonMinutes: 3, Demands: []schemas.SignalDemand{}},
		DecidedBy: "test",
	}
}

func body(t *testing.T, d schemas.ScaleDecision) []byte {
	t.Helper()
	b, err := schemas.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// registry is the actuator's registry with this package's handler, as
// cmd/ebbflow/internal/wire.Handlers builds it.
func registry(kube kubernetes.Interface, cfg actuators.Config) *actuators.Registry {
	r := actuators.NewRegistry()
	r.Register(schemas.ScaleDecision{}.EventType(), NewHandler(kube, cfg.MaxReplicas))
	return r
}

// newTestActuator is the framework with the scale handler; retries back
// off by 1 ms (the framework's sleep hook is not reachable from here).
func newTestActuator(t *testing.T, cs *fake.Clientset, cfg actuators.Config, now int64) *actuators.Actuator {
	t.Helper()
	cfg.Retry.InitialBackoff, cfg.Retry.MaxBackoff = time.Millisecond, time.Millisecond
	a, err := actuators.NewActuator(cfg, "c1", "test-actuator", cs, registry(cs, cfg), actuators.ClockFunc(func() time.Time { return time.UnixMilli(now) }), quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func replicas(t *testing.T, cs *fake.Clientset) (int32, map[string]string) {
	t.Helper()
	d, err := cs.AppsV1().Deployments("prod").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas, d.Annotations
}

func TestProcessSequence(t *testing.T) {
	type step struct {
		dec       schemas.ScaleDecision
		now       int64
		outcome   string
		reason    string
		replicas  int32
		published bool
	}
	d1 := decision(testNow, 5)
	tests := []struct {
		name  string
		ann   map[string]string
		cfg   func(*actuators.Config)
		steps []step
	}{
		{name: "applies, then skips the duplicate and a stale one, then applies a newer one", steps: []step{
			{dec: d1, now: testNow, outcome: schemas.OutcomeApplied, reason: "scaled 2 → 5", replicas: 5},
			{dec: d1, now: testNow, outcome: schemas.OutcomeSkipped, reason: "duplicate", replicas: 5},
			{dec: decision(testNow-1000, 9), now: testNow, outcome: schemas.OutcomeSkipped, reason: "stale", replicas: 5},
			{dec: decision(testNow+60_000, 3), now: testNow + 60_000, outcome: schemas.OutcomeApplied, reason: "scaled 5 → 3", replicas: 3},
		}},
		{name: "expired by the injected clock", steps: []step{
			{dec: d1, now: testNow + 121_000, outcome: schemas.OutcomeSkipped, reason: "expired", replicas: 2},
		}},
		{name: "dry run changes nothing", cfg: func(c *actuators.Config) { c.DryRun = true }, steps: []step{
			{dec: d1, now: testNow, outcome: schemas.OutcomeSkipped, reason: "dry run: would scale 2 → 5", replicas: 2},
		}},
		{name: "object max-replicas annotation clamps", ann: map[string]string{"ebbflow.io/max-replicas": "4"}, steps: []step{
			{dec: d1, now: testNow, outcome: schemas.OutcomeApplied, reason: "clamped from 5", replicas: 4},
		}},
		{name: "actuator cap clamps", cfg: func(c *actuators.Config) { c.MaxReplicas = 3 }, steps: []step{
			{dec: d1, now: testNow, outcome: schemas.OutcomeApplied, reason: "actuator cap 3", replicas: 3},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(deployment("web", 2, tc.ann))
			fakeScale(cs)
			cfg := actuators.DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			for i, s := range tc.steps {
				a := newTestActuator(t, cs, cfg, s.now)
				act, ok, err := a.Process(context.Background(), s.dec.EventType(), body(t, s.dec))
				if err != nil || !ok {
					t.Fatalf("step %d: ok=%v err=%v", i, ok, err)
				}
				if act.Outcome != s.outcome || !strings.Contains(act.Reason, s.reason) {
					t.Fatalf("step %d: %s %q, want %s containing %q", i, act.Outcome, act.Reason, s.outcome, s.reason)
				}
				if _, err := schemas.Marshal(act); err != nil {
					t.Fatalf("step %d: action violates schema: %v", i, err)
				}
				if act.DecisionID != s.dec.ID || act.Seq != s.dec.Seq || act.Actuator != "test-actuator" {
					t.Fatalf("step %d: action fields %+v", i, act)
				}
				n, ann := replicas(t, cs)
				if n != s.replicas {
					t.Fatalf("step %d: replicas %d, want %d", i, n, s.replicas)
				}
				if s.outcome == schemas.OutcomeApplied && (ann[actuators.AnnotationLastDecisionID] != s.dec.ID) {
					t.Fatalf("step %d: annotations %v", i, ann)
				}
			}
			evs, err := cs.EventsV1().Events("prod").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs.Items) != len(tc.steps) {
				t.Fatalf("%d Kubernetes events, want one per decision (%d)", len(evs.Items), len(tc.steps))
			}
			if evs.Items[0].Regarding.Name != "web" || evs.Items[0].Regarding.Kind != "Deployment" {
				t.Fatalf("event regarding %+v", evs.Items[0].Regarding)
			}
		})
	}
}

func TestProcessRetries(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	tests := []struct {
		name     string
		errs     []error
		outcome  string
		attempts int
	}{
		{name: "conflict retried", errs: []error{apierrors.NewConflict(gr, "web", errors.New("changed"))}, outcome: schemas.OutcomeApplied, attempts: 2},
		{name: "5xx retried twice", errs: []error{apierrors.NewInternalError(errors.New("boom")), apierrors.NewServiceUnavailable("later")}, outcome: schemas.OutcomeApplied, attempts: 3},
		{name: "forbidden not retried", errs: []error{apierrors.NewForbidden(gr, "web", errors.New("rbac"))}, outcome: schemas.OutcomeFailed, attempts: 1},
		{name: "gives up after attempts", errs: []error{
			apierrors.NewConflict(gr, "web", errors.New("1")), apierrors.NewConflict(gr, "web", errors.New("2")),
			apierrors.NewConflict(gr, "web", errors.New("3")), apierrors.NewConflict(gr, "web", errors.New("4")),
			apierrors.NewConflict(gr, "web", errors.New("5"))}, outcome: schemas.OutcomeFailed, attempts: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(deployment("web", 2, nil))
			fakeScale(cs)
			errs := tc.errs
			cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "scale" || len(errs) == 0 {
					return false, nil, nil
				}
				err := errs[0]
				errs = errs[1:]
				return true, nil, err
			})
			a := newTestActuator(t, cs, actuators.DefaultConfig(), testNow)
			d := decision(testNow, 6)
			act, _, err := a.Process(context.Background(), d.EventType(), body(t, d))
			if err != nil {
				t.Fatal(err)
			}
			if act.Outcome != tc.outcome || act.Attempts != tc.attempts {
				t.Fatalf("outcome %s after %d attempts (%s %s), want %s after %d", act.Outcome, act.Attempts, act.Reason, act.Error, tc.outcome, tc.attempts)
			}
			n, _ := replicas(t, cs)
			if (tc.outcome == schemas.OutcomeApplied) != (n == 6) {
				t.Fatalf("replicas %d after %s", n, tc.outcome)
			}
			if tc.outcome == schemas.OutcomeFailed && !strings.Contains(act.Error, "prod/Deployment/web") {
				t.Fatalf("error %q does not name the target", act.Error)
			}
		})
	}
}

func TestProcessRouting(t *testing.T) {
	cs := fake.NewClientset(deployment("web", 2, nil))
	fakeScale(cs)
	a := newTestActuator(t, cs, actuators.DefaultConfig(), testNow)
	ctx := context.Background()

	other := decision(testNow, 7)
	other.Target.Cluster = "c2"
	if _, ok, err := a.Process(ctx, other.EventType(), body(t, other)); ok || err != nil {
		t.Fatalf("other cluster: ok=%v err=%v, want ignored", ok, err)
	}
	if _, _, err := a.Process(ctx, "io.ebbflow.decision.nodes.v1", []byte(`{}`)); !errors.Is(err, actuators.ErrUndecodable) || !strings.Contains(err.Error(), "no handler") {
		t.Fatalf("unknown kind: %v", err)
	}
	if _, _, err := a.Process(ctx, schemas.ScaleDecision{}.EventType(), []byte(`{"id":"x"}`)); !errors.Is(err, actuators.ErrUndecodable) {
		t.Fatalf("bad body: %v", err)
	}
	missing := decision(testNow, 3)
	missing.Target.Name = "nope"
	act, ok, err := a.Process(ctx, missing.EventType(), body(t, missing))
	if err != nil || !ok || act.Outcome != schemas.OutcomeFailed || !strings.Contains(act.Error, "not found") {
		t.Fatalf("missing target: %+v ok=%v err=%v", act, ok, err)
	}
	if n, _ := replicas(t, cs); n != 2 {
		t.Fatalf("replicas changed to %d", n)
	}
}

// recordingHandler proves new kinds plug into the registry.
type recordingHandler struct{ applied []string }

func (h *recordingHandler) Decode(b []byte) (actuators.Decision, error) {
	return actuators.Decision{Kind: "nodes", ID: string(b), Seq: 1, Target: schemas.Target{Cluster: "c1", Namespace: "n", Kind: "Node", Name: string(b)}}, nil
}

func (h *recordingHandler) Apply(_ context.Context, d actuators.Decision) (schemas.Action, error) {
	h.applied = append(h.applied, d.ID)
	return schemas.Action{Outcome: schemas.OutcomeApplied, Reason: "flipped"}, nil
}

func TestRegistryPlugsInKinds(t *testing.T) {
	cs := fake.NewClientset()
	reg := registry(cs, actuators.DefaultConfig())
	h := &recordingHandler{}
	reg.Register("io.ebbflow.decision.nodes.v1", h)
	a, err := actuators.NewActuator(actuators.DefaultConfig(), "c1", "x", cs, reg, nil, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	act, ok, err := a.Process(context.Background(), "io.ebbflow.decision.nodes.v1", []byte("node-7"))
	if err != nil || !ok || act.Outcome != schemas.OutcomeApplied || len(h.applied) != 1 || act.DecisionKind != "nodes" {
		t.Fatalf("act %+v ok=%v err=%v applied=%v", act, ok, err, h.applied)
	}
	if got := reg.Types(); len(got) != 2 {
		t.Fatalf("types %v", got)
	}
}

// TestBadDecisionReasons: each kind of bad input is refused with its own
// reason (the dead letter's), and the error names what is wrong.
func TestBadDecisionReasons(t *testing.T) {
	cs := fake.NewClientset(deployment("web", 2, nil))
	cfg := actuators.DefaultConfig()
	cfg.MaxFuture = time.Hour
	a := newTestActuator(t, cs, cfg, testNow)
	st := schemas.ScaleDecision{}.EventType()
	good := body(t, decision(testNow, 3))
	replace := func(from, to string) []byte {
		b := strings.Replace(string(good), from, to, 1)
		if b == string(good) {
			t.Fatalf("%q not in %s", from, good)
		}
		return []byte(b)
	}
	for _, tc := range []struct {
		name, ceType string
		body         []byte
		reason, err  string
	}{
		{"unknown kind", "io.ebbflow.decision.bogus.v1", good, actuators.BadUnknownType, "no handler"},
		{"garbage", st, []byte("\x00\xff{not json"), actuators.BadGarbage, "not JSON"},
		{"missing field", st, []byte(`{"id":"x"}`), actuators.BadSchema, "missing propert"},
		{"another kind", st, replace(`"kind":"scale"`, `"kind":"nodes"`), actuators.BadSchema, "/kind"},
		{"negative replicas", st, replace(`"to":3`, `"to":-3`), actuators.BadOutOfRange, "/to"},
		{"seq 0", st, replace(fmt.Sprintf(`"seq":%d`, testNow), `"seq":0`), actuators.BadOutOfRange, "/seq"},
		{"far future", st, body(t, decision(testNow+2*3_600_000, 3)), actuators.BadFuture, "max_future"},
	} {
		_, _, err := a.Process(context.Background(), tc.ceType, tc.body)
		var bad *actuators.BadDecisionError
		if !errors.As(err, &bad) || !errors.Is(err, actuators.ErrUndecodable) {
			t.Errorf("%s: err %v, want a BadDecisionError", tc.name, err)
			continue
		}
		if bad.Reason != tc.reason || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: reason %q err %q, want %q naming %q", tc.name, bad.Reason, err, tc.reason, tc.err)
		}
	}
	if n, _ := replicas(t, cs); n != 2 {
		t.Fatalf("replicas changed to %d", n)
	}
}
