//go:build integration

package actuators

import (
	"strings"
	"testing"
)

// TestPipelineOnRealServices: windows and forecasts on the real Kafka →
// scaling.Run → decisions → actuators.Run (leader election on, as the
// ebbflow-actuator identity) → Deployment scaled on the real
// kube-apiserver → actions, and the decision on a JetStream consumer of an
// in-process nats-server. Forecast events are produced directly: the
// forecaster's Run does not exist yet.
func TestPipelineOnRealServices(t *testing.T) {
	brokers := strings.Split(mustEnv(t, "EBBFLOW_TEST_KAFKA_BROKERS"), ",")
	admin, actClient := kubeClients(t)
	ns := testNamespace(t, admin)
	createDeployment(t, admin, ns, "web", 2)
	pipeline{brokers: brokers, cluster: "it", namespace: ns, kube: actClient, leader: true, replicasOf: func() int32 {
		n, _ := specReplicas(t, admin, ns, "web")
		return n
	}}.run(t)
}
