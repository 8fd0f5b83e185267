package scale

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbflow/ebbflow/internal/kafkax"
)

// TestPipelineOnEmbeddedKafka runs the whole loop on kfake and a fake
// clientset (the real-services version is TestPipelineOnRealServices).
func TestPipelineOnEmbeddedKafka(t *testing.T) {
	for _, fc := range []bool{false, true} {
		t.Run(map[bool]string{false: "forecast events", true: "forecast.Run"}[fc], func(t *testing.T) { embeddedPipeline(t, fc) })
	}
}

func embeddedPipeline(t *testing.T, forecaster bool) {
	k, err := kafkax.StartEmbedded(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	d := deployment("web", 2, nil)
	d.Namespace = "prod"
	cs := fake.NewClientset(d)
	fakeScale(cs)
	pipeline{brokers: k.Addrs(), cluster: "c1", namespace: "prod", kube: cs, forecaster: forecaster, replicasOf: func() int32 {
		got, err := cs.AppsV1().Deployments("prod").Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *got.Spec.Replicas
	}}.run(t)
}
