//go:build integration

package badinput_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	kcluster "github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/training/mixing"
)

// TestBadInputMixing: node windows and forecasts that are not events, of
// an unknown type, violate the schema or lie out of range (a far-future
// window would stay the node's newest input, never stale, and hide every
// later one) go to the dead letter with the reason and count as bad; the
// good windows before and after them are used.
func TestBadInputMixing(t *testing.T) {
	s := newSweep(t, "mix")
	admin, decider := mixingClients(t)
	id := s.kc.TopicPrefix
	group := "g" + id
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "badinput-" + id, Labels: map[string]string{mixing.LabelNodeGroup: group, mixing.LabelPool: "online"}}}
	if _, err := admin.CoreV1().Nodes().Create(s.ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	cfg := mixing.DefaultConfig()
	cfg.Groups = []string{group}
	cfg.ConsumerGroup = id + "-mixing"
	cfg.Actuator.Enabled = false
	reg := prometheus.NewRegistry()
	cluster := "c" + id
	done := s.run("mixing.Run", func(ctx context.Context) error {
		return mixing.Run(ctx, cfg, mixing.Deps{Kafka: s.kc, Cluster: cluster, Kube: decider, Log: quiet(), Registerer: reg})
	})

	entity := schemas.NodeEntity(cluster, node.Name)
	now := time.Now().Truncate(time.Minute).UnixMilli()
	util := func(endMs int64, pct float64) schemas.Window {
		return schemas.Window{Entity: entity, Signal: "gpu_util", Kind: schemas.KindGauge, SizeS: 60, StartMs: endMs - 60_000, EndMs: endMs,
			Count: 1, Sum: pct, Min: pct, Max: pct, Mean: pct, Last: pct, P50: pct, P95: pct, P99: pct}
	}
	f := schemas.Forecast{ID: fmt.Sprintf("fc/%s/gpu_util/%d", entity, now), Entity: entity, Signal: "gpu_util", OriginMs: now, StepS: 60,
		Observed: 50, Model: schemas.ModelRef{ID: "test", Version: "1", FeatureSpec: "v1"},
		Horizons: []schemas.HorizonValue{{Minutes: 1, AtMs: now + 60_000, Value: 50}}}
	future := f
	future.ID, future.OriginMs = "fc/future", farFuture
	future.Horizons = []schemas.HorizonValue{{Minutes: 1, AtMs: farFuture + 60_000, Value: 1}}
	bw := util(now, 1)
	bw.EndMs = bw.StartMs - 1
	wt, ft := schemas.Window{}.EventType(), schemas.Forecast{}.EventType()
	win, fc := schemas.TopicMetricsWindows, schemas.TopicForecasts
	cases := []badCase{
		{"garbage window", s.raw(win, entity, wt, []byte("\x00\xff{not json")), "schema", "not JSON"},
		{"window count 0", s.raw(win, entity, wt, withJSON(t, util(now-30_000, 5), map[string]string{"count": "0"})), "schema", "/count"},
		{"unknown type", s.raw(win, entity, "io.ebbflow.bogus.v1", withJSON(t, util(now-30_000, 5), nil)), "decode", "neither a window nor a forecast"},
		{"far-future window", s.eventNow(win, util(farFuture, 99)), "out_of_range", "max_future"},
		{"window ending before it starts", s.raw(win, entity, wt, withJSON(t, bw, nil)), "out_of_range", "end_ms"},
		{"forecast value NaN", s.raw(fc, entity, ft, withJSON(t, f, map[string]string{"value": `"NaN"`})), "schema", "/horizons/0/value"},
		{"far-future forecast", s.eventNow(fc, future), "out_of_range", "max_future"},
	}
	// Mixing starts at the newest offset (its inputs are live state).
	s.waitGroupJoined(cfg.ConsumerGroup, done)
	msgs := []*sarama.ProducerMessage{s.event(win, util(now-60_000, 40))}
	for _, c := range cases {
		msgs = append(msgs, c.msg)
	}
	msgs = append(msgs, s.event(win, util(now, 60)), s.event(fc, f))
	offs := s.send(msgs...)
	s.checkDeadLetters(done, cases, offs[1:1+len(cases)])
	inputs := func(topic, outcome string) float64 {
		v, err := telemetry.CounterValue(reg, "ebbflow_mixing_inputs_total", "topic", s.topic(topic), "result", outcome)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// The good windows before and after, and the good forecast, were used.
	deadline := time.Now().Add(2 * time.Minute)
	for inputs(win, "used") < 2 || inputs(fc, "used") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("mixing used %v windows and %v forecasts, want 2 and 1", inputs(win, "used"), inputs(fc, "used"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if bad := inputs(win, "bad") + inputs(fc, "bad"); bad != float64(len(cases)) {
		t.Errorf("ebbflow_mixing_inputs_total{result=bad} = %v, want %d", bad, len(cases))
	}
	if n := inputs(win, "ignored"); n != 0 {
		t.Errorf("%v node windows ignored (older than the newest: a bad window was kept?)", n)
	}
}

// mixingClients applies deploy/rbac (namespace, mixing) as admin and
// returns the admin client and one acting as the mixing decider's service
// account.
func mixingClients(t *testing.T) (admin, decider kubernetes.Interface) {
	t.Helper()
	get := func(k string) string {
		v := getenv(k)
		if v == "" {
			t.Fatalf("%s is not set (source .dev/services.env: deploy/dev/services.sh up starts the control plane and writes it)", k)
		}
		return v
	}
	cfg := &rest.Config{Host: get("EBBFLOW_TEST_KUBE_SERVER"), BearerToken: get("EBBFLOW_TEST_KUBE_ADMIN_TOKEN"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: get("EBBFLOW_TEST_KUBE_CA")}, QPS: 100, Burst: 200}
	admin = kubernetes.NewForConfigOrDie(cfg)
	for _, f := range []string{"00-namespace.yaml", "mixing.yaml"} {
		if err := kcluster.ApplyManifestFile(context.Background(), admin, "../../deploy/rbac/"+f); err != nil {
			t.Fatal(err)
		}
	}
	imp := rest.CopyConfig(cfg)
	imp.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:ebbflow:ebbflow-mixing",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ebbflow", "system:authenticated"}}
	return admin, kubernetes.NewForConfigOrDie(imp)
}
