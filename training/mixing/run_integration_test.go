//go:build integration

package mixing

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	kcluster "github.com/ebbflow/ebbflow/internal/cluster"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: start the test services (deploy/dev/services.sh up; source .dev/services.env)", name)
	}
	return v
}

// deciderClient applies deploy/rbac/mixing.yaml as admin and returns the
// admin client and one acting as the decider's service account
// (impersonated by the admin, so RBAC judges the decider's identity).
func deciderClient(t *testing.T) (admin, decider kubernetes.Interface) {
	t.Helper()
	cfg := &rest.Config{Host: mustEnv(t, "EBBFLOW_TEST_KUBE_SERVER"), BearerToken: strings.TrimSpace(mustEnv(t, "EBBFLOW_TEST_KUBE_ADMIN_TOKEN")),
		TLSClientConfig: rest.TLSClientConfig{CAFile: mustEnv(t, "EBBFLOW_TEST_KUBE_CA")}, QPS: 100, Burst: 200}
	admin = kubernetes.NewForConfigOrDie(cfg)
	for _, f := range []string{"00-namespace.yaml", "mixing.yaml"} {
		if err := kcluster.ApplyManifestFile(context.Background(), admin, "../../deploy/rbac/"+f); err != nil {
			t.Fatal(err)
		}
	}
	imp := rest.CopyConfig(cfg)
	imp.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:ebbflow:ebbflow-mixing",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ebbflow", "system:authenticated"}}
	decider = kubernetes.NewForConfigOrDie(imp)
	return admin, decider
}

// The decider loop end to end on real Kafka and a real API server: low
// node windows send nodes offline, high ones bring them back, each as a
// nodes decision on the decisions topic; the decider's identity may read
// nodes and pods but change nothing.
func TestRunDecidesFromKafkaAndKube(t *testing.T) {
	admin, decider := deciderClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000_000)
	group := "g" + id
	var names []string
	for i := range 4 {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("mixrun-%s-%d", id, i), Labels: map[string]string{LabelNodeGroup: group, LabelPool: "online"}}}
		if _, err := admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, n.Name)
	}
	t.Cleanup(func() {
		for _, n := range names {
			admin.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	})
	if _, err := decider.CoreV1().Nodes().Patch(ctx, names[0], types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the decider patched a node: %v", err)
	}

	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(mustEnv(t, "EBBFLOW_TEST_KAFKA_BROKERS"), ",")
	kc.TopicPrefix = "mix" + id
	kc.Partitions = 2
	cfg := DefaultConfig()
	cfg.Groups = []string{group}
	cfg.Interval = 300 * time.Millisecond
	cfg.ConsumerGroup = kc.TopicPrefix + "-mixing"
	cfg.Policy.Dwell = 0
	cluster := "c" + id
	runErr := make(chan error, 1)
	go func() { runErr <- Run(ctx, cfg, Deps{Kafka: kc, Cluster: cluster, Kube: decider}) }()

	sc, err := kc.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	windows := kc.Topics().Name(schemas.TopicMetricsWindows)
	send := func(nodes []string, pct float64) {
		for _, n := range nodes {
			w := schemas.Window{Entity: schemas.NodeEntity(cluster, n), Signal: "gpu_util", Kind: schemas.KindGauge, SizeS: 60,
				StartMs: time.Now().Add(-time.Minute).UnixMilli(), EndMs: time.Now().UnixMilli(), Count: 1, Sum: pct, Min: pct, Max: pct, Mean: pct, Last: pct, P50: pct, P95: pct, P99: pct}
			m, err := kafkax.NewMessage(windows, "/test", w)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := prod.SendMessage(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	cons, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	decisions := make(chan schemas.NodesDecision, 16)
	started := map[int32]bool{}
	subscribe := func() {
		parts, err := cons.Partitions(kc.Topics().Name(schemas.TopicDecisions))
		if err != nil {
			return
		}
		for _, p := range parts {
			if started[p] {
				continue
			}
			pc, err := cons.ConsumePartition(kc.Topics().Name(schemas.TopicDecisions), p, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			started[p] = true
			go func() {
				for m := range pc.Messages() {
					if d, err := schemas.Decode[schemas.NodesDecision](m.Value); err == nil && d.Group == group {
						decisions <- d
					} else if err != nil {
						t.Errorf("decision on the topic does not decode: %v", err)
					}
				}
			}()
		}
	}
	await := func(feed func(), want string) schemas.NodesDecision {
		t.Helper()
		deadline := time.After(60 * time.Second)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case d := <-decisions:
				if d.Direction == want {
					return d
				}
			case err := <-runErr:
				t.Fatalf("Run ended: %v", err)
			case <-tick.C:
				subscribe()
				feed()
			case <-deadline:
				t.Fatalf("no %s decision for group %s", want, group)
			}
		}
	}

	// 10 % on 4 nodes: 0.4 nodes of demand need 1 + 1 spare; 2 go offline.
	off := await(func() { send(names, 10) }, "to-offline")
	if len(off.Nodes) != 2 || off.Reason.Code != string(ReasonUtilisationLow) || off.Target.Cluster != cluster || off.Reason.Inputs["online"] != 4 {
		t.Fatalf("to-offline decision %+v", off)
	}
	// The actuator's part, done here by the admin: the two go offline.
	var online []string
	gone := map[string]bool{}
	for _, n := range off.Nodes {
		gone[n.Node] = true
		if _, err := admin.CoreV1().Nodes().Patch(ctx, n.Node, types.MergePatchType, []byte(`{"metadata":{"labels":{"ebbflow.io/pool":"offline"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if !gone[n] {
			online = append(online, n)
		}
	}
	// 95 % on the two left: above max_rate, both come back.
	on := await(func() { send(online, 95) }, "to-online")
	if on.Reason.Code != string(ReasonUtilisationHigh) || len(on.Nodes) != 2 || !gone[on.Nodes[0].Node] {
		t.Fatalf("to-online decision %+v", on)
	}
}
