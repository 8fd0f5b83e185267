//go:build integration

package badinput_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/scale"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestBadInputActuator: decisions that are not JSON (garbage), too big or
// of another kind in the body (schema), of an unknown kind (unknown_type),
// with a number out of its bounds (negative replicas, seq 0: out_of_range)
// or stamped far in the future (future) go to the dead letter with that
// reason and a count under it; the good decisions before and after them are acted
// on (they have expired, so the actuator answers each with a skipped
// action without touching the cluster).
func TestBadInputActuator(t *testing.T) {
	s := newSweep(t, "act")
	kube := actuatorClient(t)
	cfg := actuators.DefaultConfig()
	cfg.InitialOffset = "oldest"
	cfg.ConsumerGroup = s.kc.TopicPrefix + "-actuate"
	cfg.Identity = "badinput"
	cfg.LeaderElection.Enabled = false
	cfg.Events = false
	reg := prometheus.NewRegistry()
	handlers := actuators.NewRegistry()
	handlers.Register(schemas.ScaleDecision{}.EventType(), scale.NewHandler(kube, cfg.MaxReplicas))
	out := s.collect(schemas.TopicActions)
	const cluster = "c1"
	done := s.run("actuators.Run", func(ctx context.Context) error {
		return actuators.Run(ctx, cfg, actuators.Deps{Kafka: s.kc, Cluster: cluster, Kube: kube, Handlers: handlers, Log: quiet(), Registerer: reg})
	})

	now := time.Now().UnixMilli()
	decision := func(seq int64, atMs int64) schemas.ScaleDecision {
		return schemas.ScaleDecision{ID: fmt.Sprintf("badinput/%d", seq), Kind: "scale", Seq: seq, AtMs: atMs, ExpiresMs: atMs + 60_000,
			Target: schemas.Target{Cluster: cluster, Namespace: "ns", Kind: "Deployment", Name: "web"}, Entity: "svc/" + cluster + "/ns/web", From: 2, To: 3,
			Reason: schemas.Reason{Summary: "badinput sweep", Formula: "none", Demands: []schemas.SignalDemand{}}, DecidedBy: "badinput"}
	}
	// Expired an hour ago: acted on (skipped) without a cluster write.
	good1, good2 := decision(1, now-3_600_000), decision(2, now-3_590_000)
	st := schemas.ScaleDecision{}.EventType()
	dt := schemas.TopicDecisions
	key := "svc/" + cluster + "/ns/web"
	w := decision(3, now-3_580_000)
	cases := []badCase{
		{"garbage", s.raw(dt, key, st, []byte("\x00\xff{not json")), actuators.BadGarbage, "not JSON"},
		{"oversize", s.raw(dt, key, st, oversize(900<<10)), actuators.BadSchema, "missing propert"},
		{"unknown decision kind", s.raw(dt, key, "io.ebbflow.decision.bogus.v1", withJSON(t, w, nil)), actuators.BadUnknownType, "no handler"},
		{"no CloudEvents type", s.raw(dt, key, "", withJSON(t, w, nil)), actuators.BadUnknownType, "no handler"},
		{"negative replicas", s.raw(dt, key, st, withJSON(t, w, map[string]string{"to": "-3"})), actuators.BadOutOfRange, "/to"},
		{"another kind in a scale decision", s.raw(dt, key, st, withJSON(t, w, map[string]string{"kind": `"nodes"`})), actuators.BadSchema, "/kind"},
		{"seq 0", s.raw(dt, key, st, withJSON(t, w, map[string]string{"seq": "0"})), actuators.BadOutOfRange, "/seq"},
		{"far future", s.eventNow(dt, decision(4, farFuture)), actuators.BadFuture, "max_future"},
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
	s.wait(out, "actions for the good decisions before and after the bad ones", done, func(ms []*sarama.ConsumerMessage) bool {
		seen := map[string]bool{}
		for _, m := range ms {
			if a, err := schemas.Decode[schemas.Action](m.Value); err == nil {
				seen[a.DecisionID] = true
			}
		}
		return seen[good1.ID] && seen[good2.ID]
	})
	for _, m := range out.snapshot() {
		a, err := schemas.Decode[schemas.Action](m.Value)
		if err != nil {
			t.Errorf("an action does not decode: %v", err)
			continue
		}
		if a.DecisionID != good1.ID && a.DecisionID != good2.ID {
			t.Errorf("an action for a bad decision: %s", m.Value)
		}
		if a.Outcome != schemas.OutcomeSkipped || !strings.Contains(a.Reason, "expired") {
			t.Errorf("action %s: outcome %s reason %q, want skipped as expired", a.ID, a.Outcome, a.Reason)
		}
	}
}

// actuatorClient is the real kube-apiserver as the ebbflow-actuator
// service account.
func actuatorClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	get := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s is not set (source .dev/services.env: deploy/dev/services.sh up starts the control plane and writes it)", k)
		}
		return v
	}
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: get("EBBFLOW_TEST_KUBE_SERVER"), BearerToken: strings.TrimSpace(get("EBBFLOW_TEST_KUBE_ACTUATOR_TOKEN")),
		TLSClientConfig: rest.TLSClientConfig{CAFile: get("EBBFLOW_TEST_KUBE_CA")}})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
