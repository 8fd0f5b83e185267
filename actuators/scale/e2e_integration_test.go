//go:build integration

package scale

import (
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/internal/devsvc"
)

// TestPipelineOnRealServices: windows and forecasts on the real Kafka →
// autoscale.Run → decisions → actuators.Run (leader election on, as the
// ebbflow-actuator identity) → Deployment scaled on the real
// kube-apiserver → actions, and the decision on a JetStream consumer of the
// real nats-server (TLS, account user). Twice: with forecast events produced directly
// (exact numbers), and with the real forecast.Run in the loop.
func TestPipelineOnRealServices(t *testing.T) {
	for _, fc := range []bool{false, true} {
		t.Run(map[bool]string{false: "forecast events", true: "forecast.Run"}[fc], func(t *testing.T) { realPipeline(t, fc) })
	}
}

func realPipeline(t *testing.T, forecaster bool) {
	brokers := strings.Split(mustEnv(t, "EBBFLOW_TEST_KAFKA_BROKERS"), ",")
	admin, actClient := kubeClients(t)
	ns := testNamespace(t, admin)
	createDeployment(t, admin, ns, "web", 2)
	pipeline{brokers: brokers, cluster: "it", namespace: ns, kube: actClient, leader: true, forecaster: forecaster, nats: devsvc.NATS(t), replicasOf: func() int32 {
		n, _ := specReplicas(t, admin, ns, "web")
		return n
	}}.run(t)
}
