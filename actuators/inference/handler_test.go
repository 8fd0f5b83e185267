package inference

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/schemas"
)

func specDoc(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "inference", "servers", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withVersion rewrites the version line of a spec document.
func withVersion(doc []byte, from, to string) []byte {
	return []byte(strings.Replace(string(doc), "version: "+from+"\n", "version: "+to+"\n", 1))
}

// decision builds an inference decision for a spec document (nil doc =
// retire) and round-trips it through the handler's Decode, so the schema
// is exercised too.
func decision(t *testing.T, h *Handler, id string, seq int64, action string, doc []byte, model string, version int64) actuators.Decision {
	t.Helper()
	cfg := servers.DefaultConfig()
	ev := schemas.InferenceDecision{ID: id, Kind: schemas.DecisionInference, Seq: seq, Action: action,
		Target: schemas.Target{Cluster: "c1", Namespace: cfg.Namespace, Kind: "Deployment", Name: model},
		Model:  schemas.ModelServer{Name: model, Version: version}, AtMs: seq, ExpiresMs: seq + 60_000, DecidedBy: "test",
		Reason: schemas.InferenceReason{Summary: "test " + action, Trigger: schemas.TriggerRegistered, StorePath: "models/x.yaml"}}
	if doc != nil {
		s, err := servers.ParseBytes(doc)
		if err != nil {
			t.Fatal(err)
		}
		ev.Spec, ev.SpecDigest = string(doc), servers.Digest(doc)
		ev.Model = schemas.ModelServer{Name: s.Name, Version: s.Version, Server: s.Server, Format: s.Format, Device: s.Device, Precision: s.Precision.Mode}
	}
	b, err := schemas.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustApply(t *testing.T, h *Handler, d actuators.Decision, outcome, reasonPrefix string) schemas.Action {
	t.Helper()
	act, err := h.Apply(context.Background(), d)
	if err != nil {
		t.Fatalf("%s: %v", d.ID, err)
	}
	if act.Outcome != outcome || !strings.HasPrefix(act.Reason, reasonPrefix) {
		t.Fatalf("%s: %s %q, want %s %q…", d.ID, act.Outcome, act.Reason, outcome, reasonPrefix)
	}
	return act
}

func getDep(t *testing.T, kube kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func configMaps(t *testing.T, kube kubernetes.Interface, ns string) []string {
	t.Helper()
	l, err := kube.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range l.Items {
		out = append(out, c.Name)
	}
	return out
}

func TestLaunchUpdateRetire(t *testing.T) {
	kube := fake.NewClientset()
	cfg := servers.DefaultConfig()
	ns := cfg.Namespace
	h := New(kube, cfg)
	v3 := specDoc(t, "resnet50-int8.yaml")

	act := mustApply(t, h, decision(t, h, "d1", 1, schemas.InferenceLaunch, v3, "resnet50", 3), schemas.OutcomeApplied, "launch resnet50 v3")
	dep := getDep(t, kube, ns, "resnet50")
	if *dep.Spec.Replicas != 2 || dep.Annotations[servers.AnnotationSpecDigest] != servers.Digest(v3) || dep.Annotations[AnnotationLastDecisionID] != "d1" {
		t.Fatalf("launched Deployment: replicas %d, annotations %v", *dep.Spec.Replicas, dep.Annotations)
	}
	if _, err := kube.CoreV1().Services(ns).Get(context.Background(), "resnet50", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := configMaps(t, kube, ns); len(got) != 1 || got[0] != "resnet50-v3" {
		t.Fatalf("ConfigMaps %v", got)
	}
	t.Log(act.Reason)

	// The same decision again, and a new decision with the same spec: skipped.
	mustApply(t, h, decision(t, h, "d1", 1, schemas.InferenceLaunch, v3, "resnet50", 3), schemas.OutcomeSkipped, ReasonDuplicate)
	mustApply(t, h, decision(t, h, "d2", 2, schemas.InferenceLaunch, v3, "resnet50", 3), schemas.OutcomeSkipped, ReasonUpToDate)
	mustApply(t, h, decision(t, h, "d0", 0+1, schemas.InferenceLaunch, v3, "resnet50", 3), schemas.OutcomeSkipped, ReasonStale)

	// The autoscaler scales to 5, and the scale handler records its own
	// decision (numbered in event time, far above ours); an update keeps 5
	// and is not taken for stale.
	dep.Spec.Replicas = ptr(int32(5))
	dep.Annotations[actuators.AnnotationLastDecisionID] = "scale-1"
	dep.Annotations[actuators.AnnotationLastDecisionSeq] = "9000000000000"
	if _, err := kube.AppsV1().Deployments(ns).Update(context.Background(), dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	v4 := withVersion(v3, "3", "4")
	act = mustApply(t, h, decision(t, h, "d3", 3, schemas.InferenceUpdate, v4, "resnet50", 4), schemas.OutcomeApplied, "update resnet50 v3 → v4")
	if !strings.Contains(act.Reason, "v3 serves until v4 is Ready") {
		t.Errorf("update reason %q does not say how the old version keeps serving", act.Reason)
	}
	dep = getDep(t, kube, ns, "resnet50")
	if dep.Annotations[actuators.AnnotationLastDecisionSeq] != "9000000000000" {
		t.Errorf("the scale handler's annotation was changed: %v", dep.Annotations)
	}
	if *dep.Spec.Replicas != 5 || dep.Spec.Template.Labels[servers.LabelVersion] != "4" {
		t.Fatalf("updated Deployment: replicas %d (want the autoscaler's 5), template version %s", *dep.Spec.Replicas, dep.Spec.Template.Labels[servers.LabelVersion])
	}
	// v3 has not rolled out (no controller here), so its ConfigMap stays.
	if got := strings.Join(configMaps(t, kube, ns), ","); got != "resnet50-v3,resnet50-v4" {
		t.Fatalf("ConfigMaps during the rollout: %s", got)
	}
	// Once v4 runs on every replica, the next decision prunes v3's.
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 5, UpdatedReplicas: 5, AvailableReplicas: 5, ReadyReplicas: 5}
	if _, err := kube.AppsV1().Deployments(ns).UpdateStatus(context.Background(), dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	v5 := withVersion(v3, "3", "5")
	act = mustApply(t, h, decision(t, h, "d4", 4, schemas.InferenceUpdate, v5, "resnet50", 5), schemas.OutcomeApplied, "update resnet50 v4 → v5")
	if got := strings.Join(configMaps(t, kube, ns), ","); got != "resnet50-v4,resnet50-v5" || !strings.HasSuffix(act.Reason, "finished versions: resnet50-v3") {
		t.Fatalf("after v4 rolled out: ConfigMaps %s, reason %q", got, act.Reason)
	}

	mustApply(t, h, decision(t, h, "d5", 5, schemas.InferenceRetire, nil, "resnet50", 5), schemas.OutcomeApplied, "retire resnet50 v5: deleted Deployment resnet50, Service resnet50, ConfigMap")
	if got := configMaps(t, kube, ns); len(got) != 0 {
		t.Fatalf("ConfigMaps left after retire: %v", got)
	}
	if _, err := kube.AppsV1().Deployments(ns).Get(context.Background(), "resnet50", metav1.GetOptions{}); err == nil {
		t.Fatal("Deployment left after retire")
	}
	mustApply(t, h, decision(t, h, "d6", 6, schemas.InferenceRetire, nil, "resnet50", 5), schemas.OutcomeSkipped, ReasonRetired)
}

func TestForeignObjectsAreRefusedAndUntouched(t *testing.T) {
	cfg := servers.DefaultConfig()
	ns := cfg.Namespace
	foreignDep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "resnet50", Namespace: ns, Labels: map[string]string{"app": "theirs"}}}
	foreignCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ocr-v5", Namespace: ns, Labels: map[string]string{servers.LabelManagedBy: "helm"}}, Data: map[string]string{"k": "v"}}
	kube := fake.NewClientset(foreignDep, foreignCM)
	h := New(kube, cfg)
	for _, c := range []struct {
		d    actuators.Decision
		kind string
	}{
		{decision(t, h, "d1", 1, schemas.InferenceLaunch, specDoc(t, "resnet50-int8.yaml"), "resnet50", 3), "Deployment"},
		{decision(t, h, "d2", 2, schemas.InferenceRetire, nil, "resnet50", 3), "Deployment"},
		{decision(t, h, "d3", 3, schemas.InferenceLaunch, specDoc(t, "ocr-ovms.yaml"), "ocr", 5), "ConfigMap"},
	} {
		act := mustApply(t, h, c.d, schemas.OutcomeFailed, ReasonRefused+": "+c.kind)
		if !strings.Contains(act.Reason, "left untouched") {
			t.Errorf("%s: %q", c.d.ID, act.Reason)
		}
	}
	for _, a := range kube.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" {
			t.Errorf("a refused decision wrote: %s %s", v, a.GetResource().Resource)
		}
	}
}

func TestDryRunAndBadSpecsWriteNothing(t *testing.T) {
	cfg := servers.DefaultConfig()
	kube := fake.NewClientset()
	h := New(kube, cfg)
	doc := specDoc(t, "bert-fp16.yaml")
	d := decision(t, h, "d1", 1, schemas.InferenceLaunch, doc, "bert-base", 7)
	d.DryRun = true
	mustApply(t, h, d, schemas.OutcomeSkipped, ReasonDryRun+": would apply ConfigMap bert-base-v7")

	bad := decision(t, h, "d2", 2, schemas.InferenceLaunch, doc, "bert-base", 7)
	ev := bad.Event.(schemas.InferenceDecision)
	ev.Spec = strings.Replace(ev.Spec, "device: t4", "device: v100", 1)
	ev.SpecDigest = servers.Digest([]byte(ev.Spec))
	bad.Event = ev
	act := mustApply(t, h, bad, schemas.OutcomeFailed, ReasonBadSpec)
	if !strings.Contains(act.Reason, "device: unknown device") {
		t.Errorf("bad spec reason %q does not name the field", act.Reason)
	}
	ev.Spec = string(doc) + "\n# tampered"
	bad.Event = ev
	mustApply(t, h, bad, schemas.OutcomeFailed, ReasonBadSpec+": spec_digest")
	for _, a := range kube.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" {
			t.Errorf("dry run or bad spec wrote: %s %s", v, a.GetResource().Resource)
		}
	}
}

// TestDecodeRefusesBadSpecs: a serving spec that does not parse or
// validate, does not match its digest, its model or the target, is a
// schema error naming the field at decode (the actuator dead-letters it
// before any API call); a retire carries no spec and decodes.
func TestDecodeRefusesBadSpecs(t *testing.T) {
	cfg := servers.DefaultConfig()
	h := New(fake.NewClientset(), cfg)
	doc := specDoc(t, "bert-fp16.yaml")
	good := decision(t, h, "d1", 1, schemas.InferenceLaunch, doc, "bert-base", 7).Event.(schemas.InferenceDecision)
	respec := func(d *schemas.InferenceDecision, s string) { d.Spec, d.SpecDigest = s, servers.Digest([]byte(s)) }
	for _, tc := range []struct {
		name, field, says string
		mut               func(*schemas.InferenceDecision)
	}{
		{"not YAML", "/spec", "malformed", func(d *schemas.InferenceDecision) { respec(d, "name: [unclosed\n  {{") }},
		{"unknown device", "/spec", "unknown device", func(d *schemas.InferenceDecision) {
			respec(d, strings.Replace(d.Spec, "device: t4", "device: v100", 1))
		}},
		{"digest", "/spec_digest", "sha256", func(d *schemas.InferenceDecision) { d.Spec += "\n# tampered" }},
		{"another model", "/model", "the decision says", func(d *schemas.InferenceDecision) { d.Model.Version = 8 }},
		{"target not the model", "/target/name", "is not model", func(d *schemas.InferenceDecision) { d.Target.Name = "other" }},
		{"another namespace", "/target/namespace", "namespace", func(d *schemas.InferenceDecision) { d.Target.Namespace = "elsewhere" }},
		{"retire", "", "", func(d *schemas.InferenceDecision) { d.Action, d.Spec, d.SpecDigest = schemas.InferenceRetire, "", "" }},
	} {
		d := good
		tc.mut(&d)
		b, err := schemas.Marshal(d)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err = h.Decode(b)
		var ve *schemas.ValidationError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field || !strings.Contains(ve.Reason, tc.says)):
			t.Errorf("%s: err %v, want a schema error at %s saying %q", tc.name, err, tc.field, tc.says)
		}
	}
}
