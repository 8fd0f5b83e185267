package inference

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/schemas"
)

// FieldManager is the server-side apply field manager of everything this
// handler writes.
const FieldManager = "ebbflow-inference"

// Annotations recording the last inference decision applied to a model's
// Deployment. They are not the scale handler's ebbflow.io/last-decision-*:
// the two kinds number their decisions independently (scale in event
// time), so sharing one sequence would make each skip the other's
// decisions as stale.
const (
	AnnotationLastDecisionID  = "ebbflow.io/last-inference-decision-id"
	AnnotationLastDecisionSeq = "ebbflow.io/last-inference-decision-seq"
	AnnotationLastAction      = "ebbflow.io/last-inference-action"
)

// Reasons an inference decision is skipped or refused (the start of the
// action's reason).
const (
	ReasonDuplicate = "duplicate"
	ReasonStale     = "stale"
	ReasonUpToDate  = "up to date"
	ReasonRetired   = "already retired"
	ReasonDryRun    = "dry run"
	ReasonRefused   = "refused"
	ReasonBadSpec   = "bad spec"
)

// Handler carries out inference decisions. Safe for concurrent use.
type Handler struct {
	kube kubernetes.Interface
	cfg  servers.Config
}

// New returns the handler. kube should act as the least-privilege identity
// of deploy/rbac/inference.yaml (see Client).
func New(kube kubernetes.Interface, cfg servers.Config) *Handler {
	return &Handler{kube: kube, cfg: cfg}
}

// Decode implements actuators.Handler.
func (h *Handler) Decode(body []byte) (actuators.Decision, error) {
	d, err := schemas.Decode[schemas.InferenceDecision](body)
	if err != nil {
		return actuators.Decision{}, err
	}
	// The schema carries the serving spec as an opaque string: a spec that
	// does not parse, fails validation or does not match its digest or the
	// decision is refused as input (dead letter), before any API call.
	// Apply checks the same again.
	if field, why := h.specProblem(d); why != "" {
		return actuators.Decision{}, &schemas.ValidationError{Type: d.EventType(), Field: field, Reason: why}
	}
	return actuators.Decision{Kind: d.Kind, ID: d.ID, Seq: d.Seq, Target: d.Target, AtMs: d.AtMs,
		ExpiresMs: d.ExpiresMs, DryRun: d.DryRun, Event: d}, nil
}

// specProblem names the field of a decision whose serving spec is wrong,
// and why ("" when it is right or the decision carries none: retire).
func (h *Handler) specProblem(d schemas.InferenceDecision) (field, why string) {
	if d.Target.Name != d.Model.Name {
		return "/target/name", fmt.Sprintf("target %s is not model %s's Deployment", d.Target.Key(), d.Model.Name)
	}
	if d.Action == schemas.InferenceRetire {
		return "", ""
	}
	spec, err := servers.ParseBytes([]byte(d.Spec))
	if err == nil {
		err = spec.Validate(h.cfg)
	}
	switch {
	case err != nil:
		return "/spec", "malformed serving spec: " + err.Error()
	case servers.Digest([]byte(d.Spec)) != d.SpecDigest:
		return "/spec_digest", "not the sha256 of spec"
	case spec.Name != d.Model.Name || spec.Version != d.Model.Version:
		return "/model", fmt.Sprintf("spec is %s v%d, the decision says %s v%d", spec.Name, spec.Version, d.Model.Name, d.Model.Version)
	case spec.NamespaceOr(h.cfg) != d.Target.Namespace:
		return "/target/namespace", fmt.Sprintf("spec serves in namespace %s, the target is in %s", spec.NamespaceOr(h.cfg), d.Target.Namespace)
	}
	return "", ""
}

// Apply implements actuators.Handler.
func (h *Handler) Apply(ctx context.Context, d actuators.Decision) (schemas.Action, error) {
	id, ok := d.Event.(schemas.InferenceDecision)
	if !ok {
		return schemas.Action{}, fmt.Errorf("inference handler got %T", d.Event)
	}
	if d.Target.Name != id.Model.Name {
		return failed(d, ReasonBadSpec, fmt.Sprintf("target %s is not model %s's Deployment", d.Target.Key(), id.Model.Name)), nil
	}
	if id.Action == schemas.InferenceRetire {
		return h.retire(ctx, d, id)
	}
	return h.apply(ctx, d, id)
}

func skipped(d actuators.Decision, reason string) schemas.Action {
	return schemas.Action{Outcome: schemas.OutcomeSkipped, Reason: reason, DryRun: d.DryRun}
}

func failed(d actuators.Decision, reason, detail string) schemas.Action {
	return schemas.Action{Outcome: schemas.OutcomeFailed, Reason: reason + ": " + detail, Error: detail, DryRun: d.DryRun}
}

// owned says whether an object is this model's, by its labels.
func owned(m metav1.Object, model string) bool {
	l := m.GetLabels()
	return l[servers.LabelManagedBy] == servers.ManagedByEbbflow && l[servers.LabelModel] == model
}

func refusal(kind string, m metav1.Object, model string) string {
	return fmt.Sprintf("%s %s/%s exists and is not ebbflow's (labels %s=%s and %s=%s missing): left untouched",
		kind, m.GetNamespace(), m.GetName(), servers.LabelManagedBy, servers.ManagedByEbbflow, servers.LabelModel, model)
}

// live is what exists of a model's objects.
type live struct {
	dep *appsv1.Deployment
	svc *corev1.Service
	cms []corev1.ConfigMap // owned by the model, any version
	cm  *corev1.ConfigMap  // the ConfigMap named for the decided version, owned or not
}

func (h *Handler) read(ctx context.Context, ns, model string, version int64) (live, error) {
	var l live
	dep, err := h.kube.AppsV1().Deployments(ns).Get(ctx, model, metav1.GetOptions{})
	switch {
	case err == nil:
		l.dep = dep
	case !apierrors.IsNotFound(err):
		return l, fmt.Errorf("get Deployment %s/%s: %w", ns, model, err)
	}
	svc, err := h.kube.CoreV1().Services(ns).Get(ctx, model, metav1.GetOptions{})
	switch {
	case err == nil:
		l.svc = svc
	case !apierrors.IsNotFound(err):
		return l, fmt.Errorf("get Service %s/%s: %w", ns, model, err)
	}
	if version > 0 {
		name := servers.ConfigMapName(model, version)
		cm, err := h.kube.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			l.cm = cm
		case !apierrors.IsNotFound(err):
			return l, fmt.Errorf("get ConfigMap %s/%s: %w", ns, name, err)
		}
	}
	sel := labels.SelectorFromSet(servers.OwnedLabels(model)).String()
	cms, err := h.kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return l, fmt.Errorf("list ConfigMaps %s in %s: %w", sel, ns, err)
	}
	l.cms = cms.Items
	return l, nil
}

// foreign returns a refusal when an object with one of the model's names
// exists but is not the model's.
func (l live) foreign(model string) string {
	switch {
	case l.dep != nil && !owned(l.dep, model):
		return refusal("Deployment", l.dep, model)
	case l.svc != nil && !owned(l.svc, model):
		return refusal("Service", l.svc, model)
	case l.cm != nil && !owned(l.cm, model):
		return refusal("ConfigMap", l.cm, model)
	}
	return ""
}

// idempotency says why a decision must be skipped ("" = apply): the same
// decision, an older one, or a spec already applied in full.
func idempotency(d actuators.Decision, id schemas.InferenceDecision, l live) string {
	if l.dep == nil {
		return ""
	}
	ann := l.dep.Annotations
	lastID := ann[AnnotationLastDecisionID]
	lastSeq, _ := strconv.ParseInt(ann[AnnotationLastDecisionSeq], 10, 64)
	switch {
	case lastID == d.ID:
		return fmt.Sprintf("%s: decision %s already applied", ReasonDuplicate, d.ID)
	case d.Seq <= lastSeq:
		return fmt.Sprintf("%s: seq %d is not above the last applied seq %d (%s)", ReasonStale, d.Seq, lastSeq, lastID)
	case id.Action != schemas.InferenceRetire && ann[servers.AnnotationSpecDigest] == id.SpecDigest && l.svc != nil && l.cm != nil:
		return fmt.Sprintf("%s: %s v%d already applied (spec %s…)", ReasonUpToDate, id.Model.Name, id.Model.Version, id.SpecDigest[:12])
	}
	return ""
}

func (h *Handler) apply(ctx context.Context, d actuators.Decision, id schemas.InferenceDecision) (schemas.Action, error) {
	spec, err := servers.ParseBytes([]byte(id.Spec))
	if err == nil {
		err = spec.Validate(h.cfg)
	}
	switch {
	case err != nil:
		return failed(d, ReasonBadSpec, err.Error()), nil
	case servers.Digest([]byte(id.Spec)) != id.SpecDigest:
		return failed(d, ReasonBadSpec, "spec_digest is not the sha256 of spec"), nil
	case spec.Name != id.Model.Name || spec.Version != id.Model.Version:
		return failed(d, ReasonBadSpec, fmt.Sprintf("spec is %s v%d, the decision says %s v%d", spec.Name, spec.Version, id.Model.Name, id.Model.Version)), nil
	case spec.NamespaceOr(h.cfg) != d.Target.Namespace:
		return failed(d, ReasonBadSpec, fmt.Sprintf("spec serves in namespace %s, the target is in %s", spec.NamespaceOr(h.cfg), d.Target.Namespace)), nil
	}
	ns, model := d.Target.Namespace, spec.Name
	l, err := h.read(ctx, ns, model, spec.Version)
	if err != nil {
		return schemas.Action{}, err
	}
	if why := l.foreign(model); why != "" {
		return failed(d, ReasonRefused, why), nil
	}
	if why := idempotency(d, id, l); why != "" {
		return skipped(d, why), nil
	}
	// Keep the live replica count: the autoscaler owns it after launch.
	replicas := spec.Scaling.MinReplicas
	from := ""
	if l.dep != nil {
		if l.dep.Spec.Replicas != nil {
			replicas = *l.dep.Spec.Replicas
		}
		from = l.dep.Annotations[servers.LabelVersion]
	}
	o, err := servers.Render(spec, id.SpecDigest, h.cfg, replicas)
	if err != nil {
		return failed(d, ReasonBadSpec, err.Error()), nil
	}
	o.Deployment.Annotations[AnnotationLastDecisionID] = d.ID
	o.Deployment.Annotations[AnnotationLastDecisionSeq] = strconv.FormatInt(d.Seq, 10)
	o.Deployment.Annotations[AnnotationLastAction] = fmt.Sprintf("%s v%d at %d", id.Action, spec.Version, id.AtMs)
	what := fmt.Sprintf("%s v%d (%s %s %s on %s, %d replicas)", model, spec.Version, spec.Server, spec.Format, spec.Precision.Mode, spec.Device, replicas)
	if from != "" && from != strconv.FormatInt(spec.Version, 10) {
		what = fmt.Sprintf("%s v%s → v%d (%s %s %s on %s, %d replicas; rolling, maxUnavailable 0: v%s serves until v%d is Ready)",
			model, from, spec.Version, spec.Server, spec.Format, spec.Precision.Mode, spec.Device, replicas, from, spec.Version)
	}
	if d.DryRun {
		return skipped(d, fmt.Sprintf("%s: would apply ConfigMap %s, Deployment and Service for %s", ReasonDryRun, o.ConfigMap.Name, what)), nil
	}
	if err := Apply(ctx, h.kube, o); err != nil {
		return schemas.Action{}, err
	}
	pruned, err := h.prune(ctx, ns, model, keepVersions(l.dep, spec.Version))
	if err != nil {
		return schemas.Action{}, err
	}
	reason := fmt.Sprintf("%s %s: %s", id.Action, what, id.Reason.Summary)
	if len(pruned) > 0 {
		reason += "; deleted ConfigMaps of finished versions: " + strings.Join(pruned, ", ")
	}
	return schemas.Action{Outcome: schemas.OutcomeApplied, Reason: reason}, nil
}

// keepVersions are the versions whose ConfigMaps must stay, nil meaning
// all: the new one and the one running now (it serves until the new one
// is Ready); while a rollout is still in progress, older pods may run too,
// so nothing is pruned.
func keepVersions(dep *appsv1.Deployment, next int64) map[string]bool {
	if dep != nil && !rolledOut(dep) {
		return nil
	}
	keep := map[string]bool{strconv.FormatInt(next, 10): true}
	if dep != nil {
		keep[dep.Spec.Template.Labels[servers.LabelVersion]] = true
	}
	return keep
}

// rolledOut says a Deployment's latest template runs on every replica
// and nothing older is left: what `kubectl rollout status` waits for.
func rolledOut(dep *appsv1.Deployment) bool {
	s := dep.Status
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

// prune deletes the model's ConfigMaps of versions not in keep (nil
// keeps all).
func (h *Handler) prune(ctx context.Context, ns, model string, keep map[string]bool) ([]string, error) {
	if keep == nil {
		return nil, nil
	}
	sel := labels.SelectorFromSet(servers.OwnedLabels(model)).String()
	cms, err := h.kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list ConfigMaps %s in %s: %w", sel, ns, err)
	}
	var out []string
	for _, cm := range cms.Items {
		if keep[cm.Labels[servers.LabelVersion]] {
			continue
		}
		if err := deleteOwned(ctx, h.kube.CoreV1().ConfigMaps(ns).Delete, cm.Name, cm.UID); err != nil {
			return out, fmt.Errorf("delete ConfigMap %s/%s: %w", ns, cm.Name, err)
		}
		out = append(out, cm.Name)
	}
	sort.Strings(out)
	return out, nil
}

// deleteOwned deletes an object by name only if it is still the one that
// was read (UID precondition): a foreign object created since is safe.
func deleteOwned(ctx context.Context, del func(context.Context, string, metav1.DeleteOptions) error, name string, uid types.UID) error {
	bg := metav1.DeletePropagationBackground
	err := del(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (h *Handler) retire(ctx context.Context, d actuators.Decision, id schemas.InferenceDecision) (schemas.Action, error) {
	ns, model := d.Target.Namespace, id.Model.Name
	l, err := h.read(ctx, ns, model, 0)
	if err != nil {
		return schemas.Action{}, err
	}
	if why := l.foreign(model); why != "" {
		return failed(d, ReasonRefused, why), nil
	}
	if l.dep == nil && l.svc == nil && len(l.cms) == 0 {
		return skipped(d, fmt.Sprintf("%s: %s has no Deployment, Service or ConfigMap in %s", ReasonRetired, model, ns)), nil
	}
	if why := idempotency(d, id, l); why != "" {
		return skipped(d, why), nil
	}
	var gone []string
	if l.dep != nil {
		gone = append(gone, "Deployment "+model)
	}
	if l.svc != nil {
		gone = append(gone, "Service "+model)
	}
	for _, cm := range l.cms {
		gone = append(gone, "ConfigMap "+cm.Name)
	}
	if d.DryRun {
		return skipped(d, fmt.Sprintf("%s: would delete %s", ReasonDryRun, strings.Join(gone, ", "))), nil
	}
	// The Service first, so clients stop being routed before pods go.
	if l.svc != nil {
		if err := deleteOwned(ctx, h.kube.CoreV1().Services(ns).Delete, model, l.svc.UID); err != nil {
			return schemas.Action{}, fmt.Errorf("delete Service %s/%s: %w", ns, model, err)
		}
	}
	if l.dep != nil {
		if err := deleteOwned(ctx, h.kube.AppsV1().Deployments(ns).Delete, model, l.dep.UID); err != nil {
			return schemas.Action{}, fmt.Errorf("delete Deployment %s/%s: %w", ns, model, err)
		}
	}
	for _, cm := range l.cms {
		if err := deleteOwned(ctx, h.kube.CoreV1().ConfigMaps(ns).Delete, cm.Name, cm.UID); err != nil {
			return schemas.Action{}, fmt.Errorf("delete ConfigMap %s/%s: %w", ns, cm.Name, err)
		}
	}
	return schemas.Action{Outcome: schemas.OutcomeApplied,
		Reason: fmt.Sprintf("retire %s v%d: deleted %s: %s", model, id.Model.Version, strings.Join(gone, ", "), id.Reason.Summary)}, nil
}

// Apply server-side applies the objects, ConfigMap first (the Deployment
// mounts it), with FieldManager and force: the caller has checked the
// objects are ebbflow's, so fields someone else changed on them are taken
// back. Applying the same objects twice changes nothing.
func Apply(ctx context.Context, kube kubernetes.Interface, o servers.Objects) error {
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
	for _, obj := range []struct {
		kind  string
		name  string
		ns    string
		v     any
		patch func(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) error
	}{
		{"ConfigMap", o.ConfigMap.Name, o.ConfigMap.Namespace, o.ConfigMap, func(ctx context.Context, n string, pt types.PatchType, b []byte, po metav1.PatchOptions, sub ...string) error {
			_, err := kube.CoreV1().ConfigMaps(o.ConfigMap.Namespace).Patch(ctx, n, pt, b, po, sub...)
			return err
		}},
		{"Deployment", o.Deployment.Name, o.Deployment.Namespace, o.Deployment, func(ctx context.Context, n string, pt types.PatchType, b []byte, po metav1.PatchOptions, sub ...string) error {
			_, err := kube.AppsV1().Deployments(o.Deployment.Namespace).Patch(ctx, n, pt, b, po, sub...)
			return err
		}},
		{"Service", o.Service.Name, o.Service.Namespace, o.Service, func(ctx context.Context, n string, pt types.PatchType, b []byte, po metav1.PatchOptions, sub ...string) error {
			_, err := kube.CoreV1().Services(o.Service.Namespace).Patch(ctx, n, pt, b, po, sub...)
			return err
		}},
	} {
		doc, err := servers.ApplyDocument(obj.v)
		if err != nil {
			return fmt.Errorf("encode %s %s/%s: %w", obj.kind, obj.ns, obj.name, err)
		}
		if err := obj.patch(ctx, obj.name, types.ApplyPatchType, doc, opts); err != nil {
			return fmt.Errorf("apply %s %s/%s as %s: %w", obj.kind, obj.ns, obj.name, FieldManager, err)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
