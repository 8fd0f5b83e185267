// Package scale is the actuator handler of scale decisions
// (schemas.ScaleDecision, CloudEvents type io.ebbflow.decision.scale.v1):
// it sets the replicas of a Deployment or StatefulSet through the scale
// subresource. It plugs into the actuators framework as an
// actuators.Handler; the list of handlers is in cmd/ebbflow/internal/wire.
package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/schemas"
)

// Handler applies scale decisions to Deployments and StatefulSets
// through the scale subresource, and records the decision id and sequence
// on the object with a merge patch. Safe for concurrent use.
type Handler struct {
	kube kubernetes.Interface
	// maxReplicas is the actuator's own safety cap.
	maxReplicas int32
	// beforeUpdate, when set (WithBeforeUpdate), runs between GetScale
	// and UpdateScale.
	beforeUpdate func(ctx context.Context, t schemas.Target)
}

// Option configures NewHandler.
type Option func(*Handler)

// WithBeforeUpdate runs f between each GetScale and its UpdateScale (for
// tests that make another writer race the handler).
func WithBeforeUpdate(f func(ctx context.Context, t schemas.Target)) Option {
	return func(h *Handler) { h.beforeUpdate = f }
}

// NewHandler returns the scale handler. maxReplicas caps every decision
// (0 = no cap).
func NewHandler(kube kubernetes.Interface, maxReplicas int32, opts ...Option) *Handler {
	h := &Handler{kube: kube, maxReplicas: maxReplicas}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Decode implements actuators.Handler.
func (h *Handler) Decode(body []byte) (actuators.Decision, error) {
	sd, err := schemas.Decode[schemas.ScaleDecision](body)
	if err != nil {
		return actuators.Decision{}, err
	}
	return actuators.Decision{Kind: sd.Kind, ID: sd.ID, Seq: sd.Seq, Target: sd.Target, AtMs: sd.AtMs,
		ExpiresMs: sd.ExpiresMs, DryRun: sd.DryRun, Event: sd}, nil
}

type object struct {
	ann map[string]string
	min *int32
	max *int32
}

func (h *Handler) get(ctx context.Context, t schemas.Target) (object, error) {
	var m metav1.ObjectMeta
	switch t.Kind {
	case "Deployment":
		o, err := h.kube.AppsV1().Deployments(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return object{}, err
		}
		m = o.ObjectMeta
	case "StatefulSet":
		o, err := h.kube.AppsV1().StatefulSets(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return object{}, err
		}
		m = o.ObjectMeta
	default:
		return object{}, fmt.Errorf("kind %q is not Deployment or StatefulSet", t.Kind)
	}
	o := object{ann: m.Annotations}
	for key, dst := range map[string]**int32{"ebbflow.io/min-replicas": &o.min, "ebbflow.io/max-replicas": &o.max} {
		if s, ok := m.Annotations[key]; ok {
			if n, err := strconv.ParseInt(s, 10, 32); err == nil {
				v := int32(n)
				*dst = &v
			}
		}
	}
	return o, nil
}

func (h *Handler) getScale(ctx context.Context, t schemas.Target) (*autoscalingv1.Scale, error) {
	if t.Kind == "StatefulSet" {
		return h.kube.AppsV1().StatefulSets(t.Namespace).GetScale(ctx, t.Name, metav1.GetOptions{})
	}
	return h.kube.AppsV1().Deployments(t.Namespace).GetScale(ctx, t.Name, metav1.GetOptions{})
}

func (h *Handler) updateScale(ctx context.Context, t schemas.Target, s *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
	if t.Kind == "StatefulSet" {
		return h.kube.AppsV1().StatefulSets(t.Namespace).UpdateScale(ctx, t.Name, s, metav1.UpdateOptions{})
	}
	return h.kube.AppsV1().Deployments(t.Namespace).UpdateScale(ctx, t.Name, s, metav1.UpdateOptions{})
}

func (h *Handler) annotate(ctx context.Context, t schemas.Target, ann map[string]string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return err
	}
	if t.Kind == "StatefulSet" {
		_, err = h.kube.AppsV1().StatefulSets(t.Namespace).Patch(ctx, t.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	} else {
		_, err = h.kube.AppsV1().Deployments(t.Namespace).Patch(ctx, t.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	}
	return err
}

// Apply implements actuators.Handler: skip a duplicate or stale decision, clamp to
// the object's own ebbflow.io/min-replicas and max-replicas annotations
// and the actuator's cap, update the scale subresource (optimistic
// concurrency: a concurrent change is a conflict, retried by the
// framework), then record the decision on the object.
func (h *Handler) Apply(ctx context.Context, d actuators.Decision) (schemas.Action, error) {
	sd, ok := d.Event.(schemas.ScaleDecision)
	if !ok {
		return schemas.Action{}, fmt.Errorf("scale handler got %T", d.Event)
	}
	t := d.Target
	obj, err := h.get(ctx, t)
	if err != nil {
		return schemas.Action{}, fmt.Errorf("get %s: %w", t.Key(), err)
	}
	if why := actuators.IdempotencyCheck(d, obj.ann); why != "" {
		return actuators.Skipped(d, why), nil
	}
	sc, err := h.getScale(ctx, t)
	if err != nil {
		return schemas.Action{}, fmt.Errorf("get scale of %s: %w", t.Key(), err)
	}
	before := sc.Spec.Replicas
	to := sd.To
	var notes string
	if obj.max != nil && to > *obj.max {
		to, notes = *obj.max, fmt.Sprintf(" (clamped from %d to the object's max-replicas %d)", sd.To, *obj.max)
	}
	if obj.min != nil && to < *obj.min {
		to, notes = *obj.min, fmt.Sprintf(" (raised from %d to the object's min-replicas %d)", sd.To, *obj.min)
	}
	if h.maxReplicas > 0 && to > h.maxReplicas {
		to, notes = h.maxReplicas, fmt.Sprintf(" (clamped from %d to the actuator cap %d)", sd.To, h.maxReplicas)
	}
	act := schemas.Action{Before: &before, DryRun: d.DryRun}
	if d.DryRun {
		act.Outcome = schemas.OutcomeSkipped
		act.Reason = fmt.Sprintf("dry run: would scale %d → %d%s; %s", before, to, notes, sd.Reason.Summary)
		return act, nil
	}
	if h.beforeUpdate != nil {
		h.beforeUpdate(ctx, t)
	}
	if to != before {
		sc.Spec.Replicas = to
		if _, err := h.updateScale(ctx, t, sc); err != nil {
			return schemas.Action{}, fmt.Errorf("update scale of %s to %d: %w", t.Key(), to, err)
		}
	}
	after := to
	act.After = &after
	if err := h.annotate(ctx, t, actuators.DecisionAnnotations(d, fmt.Sprintf("scale %d→%d at %d", before, to, sd.AtMs))); err != nil {
		return schemas.Action{}, fmt.Errorf("annotate %s with decision %s: %w", t.Key(), d.ID, err)
	}
	act.Outcome = schemas.OutcomeApplied
	if to == before {
		act.Reason = fmt.Sprintf("already at %d%s; recorded decision", to, notes)
	} else {
		act.Reason = fmt.Sprintf("scaled %d → %d%s: %s", before, to, notes, sd.Reason.Summary)
	}
	return act, nil
}
