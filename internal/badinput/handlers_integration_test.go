//go:build integration

package badinput_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/inference"
	"github.com/ebbflow/ebbflow/actuators/nodes"
	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// kube is the real kube-apiserver: admin, and the actuator's own
// connection (its token) to impersonate the handlers' identities, after
// deploy/rbac's files are applied.
func kube(t *testing.T, rbac ...string) (admin kubernetes.Interface, actuatorRC *rest.Config) {
	t.Helper()
	rc := func(tokenVar string) *rest.Config {
		return &rest.Config{Host: mustGetenv(t, "EBBFLOW_TEST_KUBE_SERVER"), BearerToken: mustGetenv(t, tokenVar),
			TLSClientConfig: rest.TLSClientConfig{CAFile: mustGetenv(t, "EBBFLOW_TEST_KUBE_CA")}, QPS: 100, Burst: 200}
	}
	admin, err := kubernetes.NewForConfig(rc("EBBFLOW_TEST_KUBE_ADMIN_TOKEN"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{"00-namespace.yaml", "actuator.yaml"}, rbac...) {
		if err := cluster.ApplyManifestFile(context.Background(), admin, filepath.Join("..", "..", "deploy", "rbac", f)); err != nil {
			t.Fatalf("apply deploy/rbac/%s: %v", f, err)
		}
	}
	return admin, rc("EBBFLOW_TEST_KUBE_ACTUATOR_TOKEN")
}

func mustGetenv(t *testing.T, k string) string {
	t.Helper()
	v := getenv(k)
	if v == "" {
		t.Fatalf("%s is not set (source .dev/services.env: deploy/dev/services.sh up starts the control plane and writes it)", k)
	}
	return v
}

// impersonating is rc acting as user, as the actuator's wire does.
func impersonating(t *testing.T, rc *rest.Config, user string) kubernetes.Interface {
	t.Helper()
	c := rest.CopyConfig(rc)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// waitKube polls ok for up to 2 minutes (RBAC caches, kwok).
func waitKube(t *testing.T, what string, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jsonOf is v as JSON without ebbflow's schema check: how a broken
// producer writes a decision.
func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runActuator runs actuators.Run with one handler on the sweep's topics
// and returns the collector of its actions.
func runActuator(s *sweep, kube kubernetes.Interface, ceType string, h actuators.Handler, reg *prometheus.Registry) (*collector, <-chan error) {
	cfg := actuators.DefaultConfig()
	cfg.InitialOffset = "oldest"
	cfg.ConsumerGroup = s.kc.TopicPrefix + "-actuate"
	cfg.Identity = "badinput"
	cfg.LeaderElection.Enabled = false
	cfg.Events = false
	handlers := actuators.NewRegistry()
	handlers.Register(ceType, h)
	out := s.collect(schemas.TopicActions)
	done := s.run("actuators.Run", func(ctx context.Context) error {
		return actuators.Run(ctx, cfg, actuators.Deps{Kafka: s.kc, Cluster: "c1", Kube: kube, Handlers: handlers, Log: quiet(), Registerer: reg})
	})
	return out, done
}

// actionsFor waits for one action per good decision and returns them by
// decision id; it fails on an action for any other decision.
func (s *sweep) actionsFor(out *collector, done <-chan error, ids ...string) map[string]schemas.Action {
	s.t.Helper()
	got := map[string]schemas.Action{}
	s.wait(out, "actions for the good decisions around the bad ones", done, func(ms []*sarama.ConsumerMessage) bool {
		for _, m := range ms {
			if a, err := schemas.Decode[schemas.Action](m.Value); err == nil {
				got[a.DecisionID] = a
			}
		}
		return len(got) >= len(ids)
	})
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			s.t.Errorf("no action for good decision %s", id)
		}
	}
	for id, a := range got {
		found := false
		for _, want := range ids {
			found = found || id == want
		}
		if !found {
			s.t.Errorf("an action for a bad decision: %+v", a)
		}
	}
	return got
}

// TestBadInputNodesActuator: node decisions that are garbage, name nodes
// Kubernetes cannot hold, carry negative pod counts or lost work, name an
// unknown pool or direction, no nodes, a target that is not their group,
// or a far-future time go to the dead letter with the reason; the good
// decisions around them hand real kwok nodes over on the real
// kube-apiserver (as the node actuator's impersonated identity); a
// well-formed decision for a node that does not exist is answered with a
// skipped action, not a stall.
func TestBadInputNodesActuator(t *testing.T) {
	s := newSweep(t, "nodes")
	admin, arc := kube(t, "node-actuator.yaml")
	act := impersonating(t, arc, mixing.DefaultConfig().Actuator.Impersonate)
	waitKube(t, "the node actuator's RBAC", func() error {
		_, err := act.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{Limit: 1})
		return err
	})
	group := s.kc.TopicPrefix
	node := func(i int, pool string) string {
		name := fmt.Sprintf("%s-%d", group, i)
		alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
				Labels: map[string]string{mixing.LabelNodeGroup: group, mixing.LabelPool: pool, "kubernetes.io/hostname": name, "type": "kwok"}},
			Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: "ebbflow.io/test", Value: group, Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{Capacity: alloc.DeepCopy(), Allocatable: alloc},
		}
		if _, err := admin.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
		waitKube(t, "kwok to make "+name+" Ready", func() error {
			got, err := admin.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range got.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("%s not Ready: %v", name, got.Status.Conditions)
		})
		return name
	}
	n1, n2 := node(1, "offline"), node(2, "online")

	ncfg := nodes.DefaultConfig()
	ncfg.DrainGrace = 0
	ncfg.Identity = "badinput"
	h, err := nodes.New(act, ncfg, nil, quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	nt := schemas.NodesDecision{}.EventType()
	out, done := runActuator(s, act, nt, h, reg)

	now := time.Now().UnixMilli()
	seq := now
	decision := func(id, dir string, flips ...schemas.NodeFlip) schemas.NodesDecision {
		seq++
		return schemas.NodesDecision{ID: group + "/" + id, Kind: schemas.DecisionNodes, Seq: seq, Target: schemas.NodeGroupTarget("c1", group), Group: group,
			AtMs: now, ExpiresMs: now + 600_000, Direction: dir, Nodes: flips, DecidedBy: "badinput",
			Reason: schemas.NodesReason{Summary: "badinput sweep", Code: "UtilisationAboveMaxRate",
				Thresholds: map[string]float64{"min_rate": 0.35, "max_rate": 0.85, "expect_rate": 0.65, "lead_time_s": 240},
				Inputs:     map[string]float64{"utilisation": 0.9, "online": 1, "offline": 1, "required": 2}}}
	}
	flip := func(n, from, to string) schemas.NodeFlip {
		return schemas.NodeFlip{Node: n, From: from, To: to, Why: "badinput sweep", TrainingPods: 0}
	}
	good1 := decision("good1", "to-online", flip(n1, "offline", "online"))
	missing := decision("missing", "to-online", flip(group+"-99", "offline", "online"))
	w := decision("w", "to-online", flip(n1, "offline", "online"))
	bad := func(mut func(*schemas.NodesDecision)) []byte {
		d := decision("bad", "to-online", flip(n1, "offline", "online"))
		mut(&d)
		return jsonOf(t, d)
	}
	key := schemas.NodeGroupTarget("c1", group).Key()
	dt := schemas.TopicDecisions
	cases := []badCase{
		{"garbage", s.raw(dt, key, nt, []byte("\x00\xff{not json")), actuators.BadGarbage, "not JSON"},
		{"a path as node name", s.raw(dt, key, nt, bad(func(d *schemas.NodesDecision) { d.Nodes[0].Node = "../../etc/passwd" })), actuators.BadSchema, "/nodes/0/node"},
		{"a node name with capitals and spaces", s.raw(dt, key, nt, bad(func(d *schemas.NodesDecision) { d.Nodes[0].Node = "GPU Node 1" })), actuators.BadSchema, "/nodes/0/node"},
		{"empty node name", s.raw(dt, key, nt, bad(func(d *schemas.NodesDecision) { d.Nodes[0].Node = "" })), actuators.BadSchema, "/nodes/0/node"},
		{"negative training pods", s.raw(dt, key, nt, withJSON(t, w, map[string]string{"training_pods": "-2"})), actuators.BadOutOfRange, "/nodes/0/training_pods"},
		{"negative lost work", s.raw(dt, key, nt, withJSON(t, w, map[string]string{"lost_work_s": "-5"})), actuators.BadOutOfRange, "/nodes/0/lost_work_s"},
		{"unknown pool", s.raw(dt, key, nt, bad(func(d *schemas.NodesDecision) { d.Nodes[0].To = "gpu-spot" })), actuators.BadSchema, "/nodes/0/to"},
		{"unknown direction", s.raw(dt, key, nt, bad(func(d *schemas.NodesDecision) { d.Direction = "sideways" })), actuators.BadSchema, "/direction"},
		{"no nodes", s.raw(dt, key, nt, bad(func(d *schemas.NodesDecision) { d.Nodes = []schemas.NodeFlip{} })), actuators.BadSchema, "/nodes"},
		{"target is not the group", s.raw(dt, key, nt, bad(func(d *schemas.NodesDecision) { d.Target.Name = "other-group" })), actuators.BadSchema, "/target/name"},
		{"seq 0", s.raw(dt, key, nt, withJSON(t, w, map[string]string{"seq": "0"})), actuators.BadOutOfRange, "/seq"},
		{"far future", s.eventNow(dt, func() schemas.NodesDecision {
			d := decision("future", "to-online", flip(n1, "offline", "online"))
			d.AtMs = farFuture
			return d
		}()), actuators.BadFuture, "max_future"},
	}
	good2 := decision("good2", "to-offline", flip(n2, "online", "offline"))
	msgs := []*sarama.ProducerMessage{s.event(dt, good1), s.event(dt, missing)}
	for _, c := range cases {
		msgs = append(msgs, c.msg)
	}
	msgs = append(msgs, s.event(dt, good2))
	offs := s.send(msgs...)
	s.checkDeadLetters(done, cases, offs[2:2+len(cases)])
	s.checkCounter(reg, "ebbflow_actuate_bad_decisions_total", float64(len(cases)))
	s.checkReasons(reg, "ebbflow_actuate_bad_decisions_total", cases)
	acts := s.actionsFor(out, done, good1.ID, missing.ID, good2.ID)
	for _, g := range []struct {
		d    schemas.NodesDecision
		node string
	}{{good1, n1}, {good2, n2}} {
		if a := acts[g.d.ID]; a.Outcome != schemas.OutcomeApplied || !strings.Contains(a.Reason, g.node) {
			t.Errorf("good decision %s: %s %q, want applied on %s", g.d.ID, a.Outcome, a.Reason, g.node)
		}
		n, err := admin.CoreV1().Nodes().Get(context.Background(), g.node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Annotations[mixing.AnnotationDecisionID] != g.d.ID {
			t.Errorf("node %s records decision %q, want %s (labels %v)", g.node, n.Annotations[mixing.AnnotationDecisionID], g.d.ID, n.Labels)
		}
	}
	if a := acts[missing.ID]; a.Outcome != schemas.OutcomeSkipped || !strings.Contains(a.Reason, "not found") {
		t.Errorf("decision for a node that does not exist: %s %q, want skipped naming it not found", a.Outcome, a.Reason)
	}
}

// TestBadInputInferenceActuator: inference decisions that are garbage, carry
// a serving spec that does not parse, fails validation or does not match
// its digest or its model, a version 0, an unknown server, no spec for a
// launch, or a far-future time go to the dead letter with the reason
// before any API call; the good launches around them create their model
// servers on the real kube-apiserver (as the inference identity).
func TestBadInputInferenceActuator(t *testing.T) {
	s := newSweep(t, "inf")
	admin, arc := kube(t, "inference.yaml")
	scfg := servers.DefaultConfig()
	ns := scfg.Namespace
	act, err := inference.Client(arc, scfg.Impersonate)
	if err != nil {
		t.Fatal(err)
	}
	waitKube(t, "the inference identity's RBAC", func() error {
		_, err := act.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{Limit: 1})
		return err
	})
	h := inference.New(act, scfg)
	reg := prometheus.NewRegistry()
	it := schemas.InferenceDecision{}.EventType()
	out, done := runActuator(s, act, it, h, reg)

	spec := func(file string) (doc []byte, model string) {
		b, err := os.ReadFile(filepath.Join("..", "..", "inference", "servers", "testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		sp, err := servers.ParseBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		model = fmt.Sprintf("%s-%s", sp.Name, strings.TrimPrefix(s.kc.TopicPrefix, "badinf"))
		doc = []byte(strings.Replace(string(b), "name: "+sp.Name+"\n", "name: "+model+"\n", 1))
		t.Cleanup(func() {
			ctx := context.Background()
			_ = admin.AppsV1().Deployments(ns).Delete(ctx, model, metav1.DeleteOptions{})
			_ = admin.CoreV1().Services(ns).Delete(ctx, model, metav1.DeleteOptions{})
			_ = admin.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: servers.LabelModel + "=" + model})
		})
		return doc, model
	}
	now := time.Now().UnixMilli()
	seq := now
	launch := func(id string, doc []byte) schemas.InferenceDecision {
		sp, err := servers.ParseBytes(doc)
		if err != nil {
			t.Fatal(err)
		}
		seq++
		return schemas.InferenceDecision{ID: s.kc.TopicPrefix + "/" + id, Kind: schemas.DecisionInference, Seq: seq, Action: schemas.InferenceLaunch,
			Target: schemas.Target{Cluster: "c1", Namespace: sp.NamespaceOr(scfg), Kind: "Deployment", Name: sp.Name},
			Model:  schemas.ModelServer{Name: sp.Name, Version: sp.Version, Server: sp.Server, Format: sp.Format, Device: sp.Device, Precision: sp.Precision.Mode},
			Spec:   string(doc), SpecDigest: servers.Digest(doc), AtMs: now, ExpiresMs: now + 600_000, DecidedBy: "badinput",
			Reason: schemas.InferenceReason{Summary: "badinput sweep", Trigger: schemas.TriggerRegistered, StorePath: "models/x.yaml"}}
	}
	doc1, model1 := spec("resnet50-int8.yaml")
	doc2, model2 := spec("bert-fp16.yaml")
	good1, good2 := launch("good1", doc1), launch("good2", doc2)
	bad := func(mut func(*schemas.InferenceDecision)) []byte {
		d := launch("bad", doc1)
		mut(&d)
		return jsonOf(t, d)
	}
	respec := func(d *schemas.InferenceDecision, doc string) {
		d.Spec, d.SpecDigest = doc, servers.Digest([]byte(doc))
	}
	key := good1.Target.Key()
	dt := schemas.TopicDecisions
	cases := []badCase{
		{"garbage", s.raw(dt, key, it, []byte("\x00\xff{not json")), actuators.BadGarbage, "not JSON"},
		{"a spec that is not YAML", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) { respec(d, "name: [unclosed\n  {{") })), actuators.BadSchema, "/spec"},
		{"a spec on an unknown device", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) {
			respec(d, strings.Replace(d.Spec, "device: a100", "device: v100", 1))
		})), actuators.BadSchema, "unknown device"},
		{"a spec that is not its digest", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) { d.Spec += "\n# tampered" })), actuators.BadSchema, "/spec_digest"},
		{"a spec of another model", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) { respec(d, string(doc2)) })), actuators.BadSchema, "/model"},
		{"target is not the model", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) { d.Target.Name = "someone-else" })), actuators.BadSchema, "/target/name"},
		{"version 0", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) { d.Model.Version = 0 })), actuators.BadOutOfRange, "/model/version"},
		{"unknown server", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) { d.Model.Server = "tensorflow-serving" })), actuators.BadSchema, "/model/server"},
		{"a launch without spec", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) { d.Spec, d.SpecDigest = "", "" })), actuators.BadSchema, "spec"},
		{"unknown action", s.raw(dt, key, it, bad(func(d *schemas.InferenceDecision) { d.Action = "explode" })), actuators.BadSchema, "/action"},
		{"far future", s.eventNow(dt, func() schemas.InferenceDecision { d := launch("future", doc1); d.AtMs = farFuture; return d }()), actuators.BadFuture, "max_future"},
	}
	msgs := []*sarama.ProducerMessage{s.event(dt, good1)}
	for _, c := range cases {
		msgs = append(msgs, c.msg)
	}
	msgs = append(msgs, s.event(dt, good2))
	offs := s.send(msgs...)
	s.checkDeadLetters(done, cases, offs[1:1+len(cases)])
	s.checkCounter(reg, "ebbflow_actuate_bad_decisions_total", float64(len(cases)))
	s.checkReasons(reg, "ebbflow_actuate_bad_decisions_total", cases)
	acts := s.actionsFor(out, done, good1.ID, good2.ID)
	for _, g := range []struct {
		d     schemas.InferenceDecision
		model string
	}{{good1, model1}, {good2, model2}} {
		if a := acts[g.d.ID]; a.Outcome != schemas.OutcomeApplied {
			t.Errorf("good launch %s: %s %q %q, want applied", g.d.ID, a.Outcome, a.Reason, a.Error)
		}
		dep, err := admin.AppsV1().Deployments(ns).Get(context.Background(), g.model, metav1.GetOptions{})
		if err != nil {
			t.Errorf("model server %s: %v", g.model, err)
			continue
		}
		if dep.Annotations[inference.AnnotationLastDecisionID] != g.d.ID {
			t.Errorf("Deployment %s records decision %q, want %s", g.model, dep.Annotations[inference.AnnotationLastDecisionID], g.d.ID)
		}
	}
}
