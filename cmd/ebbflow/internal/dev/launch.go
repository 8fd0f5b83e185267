package dev

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/sim"
)

// LaunchedModel is the model `ebbflow dev` registers in its model store
// after dev.launch_after: nothing serves it before, the servers decider
// launches it, and the autoscaler scales it like the other services.
const LaunchedModel = "resnet50"

// launchedService is the simulated service behind the launched model: its
// pods exist only once the inference actuator has created the Deployment.
func launchedService(d wire.DevConfig) sim.Service {
	load := d.LaunchLoad * d.CapacityRPS
	return sim.Service{
		Name: LaunchedModel, Model: LaunchedModel, CapacityRPS: d.CapacityRPS, BaseLatencyMs: d.BaseLatencyMs,
		ModelMemMiB: 9000, Launched: true,
		Load: func(t time.Duration) float64 { return load * (1 + 0.15*math.Sin(t.Minutes()/9)) },
	}
}

// launchSpec is the serving spec dev registers: a Triton server for an
// ONNX model at FP16 on an A100, with the dev services' scaling policy.
func launchSpec(d wire.DevConfig) []byte {
	return fmt.Appendf(nil, `# Registered by ebbflow dev after dev.launch_after (docs/servers.md).
name: %s
version: 1
format: onnx
model_uri: /models/%[1]s/1
server: triton
device: a100
precision: {mode: fp16}
max_batch_size: 32
batching: {preferred_batch_sizes: [8, 16], max_queue_delay_us: 500}
inputs:
  - {name: input, data_type: fp32, dims: [3, 224, 224]}
outputs:
  - {name: probabilities, data_type: fp32, dims: [1000]}
instances: 1
resources: {cpu: "4", memory: 8Gi, gpus: 1}
scaling:
  min_replicas: 1
  max_replicas: %d
  startup_time: %s
  latency_slo_ms: %g
  signals:
    qps: {expect_rate: 0.7, capacity: %g}
    gpu_util: {expect_rate: 0.7, capacity: 100}
`, LaunchedModel, d.MaxReplicas, d.StartupDelay, d.LatencySLOMs, d.CapacityRPS)
}

// registerModel writes the spec into the model store once the simulated
// clock reaches at (written under a temporary name, then renamed, so the
// decider never reads half a file).
func registerModel(ctx context.Context, now func() time.Time, at time.Time, dir string, spec []byte) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for now().Before(at) {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	tmp := filepath.Join(dir, "."+LaunchedModel+".yaml.tmp")
	if err := os.WriteFile(tmp, spec, 0o644); err != nil {
		return fmt.Errorf("dev: register %s: %w", LaunchedModel, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, LaunchedModel+".yaml")); err != nil {
		return fmt.Errorf("dev: register %s: %w", LaunchedModel, err)
	}
	return nil
}
