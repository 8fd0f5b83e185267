package wire

import (
	"errors"
	"fmt"
	"time"
)

// DevConfig is the `dev` section of the configuration file: how the embedded
// parts listen and what the simulated cluster looks like. Per-run choices
// (speed, duration, trace) are Options, set by flags.
type DevConfig struct {
	// KafkaPort is the embedded Kafka (kfake) port on 127.0.0.1; 0 picks a free one.
	KafkaPort int `yaml:"kafka_port"`
	// Partitions is the partition count of every embedded topic.
	Partitions int32 `yaml:"partitions"`
	// NATSPort is the embedded nats-server port on 127.0.0.1; -1 picks a free one.
	NATSPort int `yaml:"nats_port"`
	// HistoryDir is the local history directory; empty uses a temporary
	// directory removed at exit.
	HistoryDir string `yaml:"history_dir"`
	// Namespace holds the simulated inference services.
	Namespace string `yaml:"namespace"`
	// Services is how many simulated inference services run.
	Services int `yaml:"services"`
	// Nodes and GPUsPerNode size the simulated GPU pool; a pod needs one GPU
	// and stays Pending while none is free.
	Nodes       int `yaml:"nodes"`
	GPUsPerNode int `yaml:"gpus_per_node"`
	// CapacityRPS is what one replica serves at full utilisation.
	CapacityRPS float64 `yaml:"capacity_rps"`
	// BaseLatencyMs is one replica's service time with no queueing.
	BaseLatencyMs float64 `yaml:"base_latency_ms"`
	// MinReplicas and MaxReplicas bound each service; InitialReplicas is
	// its replica count at start (0: what the starting load needs).
	MinReplicas     int32 `yaml:"min_replicas"`
	MaxReplicas     int32 `yaml:"max_replicas"`
	InitialReplicas int32 `yaml:"initial_replicas"`
	// PeakUtilisation scales each service's busiest load to this fraction of
	// MaxReplicas × CapacityRPS.
	PeakUtilisation float64 `yaml:"peak_utilisation"`
	// StartupDelay is how long (simulated time) a new replica takes to become ready.
	StartupDelay time.Duration `yaml:"startup_delay"`
	// Step is the simulated time between two states of the cluster, which is
	// also the scrape interval in simulated time.
	Step time.Duration `yaml:"step"`
	// LatencySLOMs is the latency objective the summary counts minutes against.
	LatencySLOMs float64 `yaml:"latency_slo_ms"`
	// Seed makes the generated traffic reproducible.
	Seed int64 `yaml:"seed"`
	// StartHour is the hour of the (simulated) day the traffic pattern starts at.
	StartHour float64 `yaml:"start_hour"`
	// MaxLag is how far (simulated time) the simulation may run ahead of the
	// newest window the pipeline produced before it waits for it.
	MaxLag time.Duration `yaml:"max_lag"`
	// LaunchAfter registers a model serving spec (a Triton server, see
	// docs/servers.md) in the dev model store this long (simulated time)
	// after the start: the servers decider decides to launch it, the
	// actuator applies it, the simulated cluster runs its pods (serving
	// Triton metrics) and the autoscaler scales it. 0: no launch.
	LaunchAfter time.Duration `yaml:"launch_after"`
	// LaunchLoad is the launched server's offered load, in multiples of
	// capacity_rps (so it needs more than one replica).
	LaunchLoad float64 `yaml:"launch_load"`
	// NodeGroup, when set, puts the simulated nodes in one node group of
	// that name with pools (docs/mixing.md): OfflineNodes of them start
	// offline, the rest online, and a stream of training jobs shaped by
	// the Philly trace in TracesDir runs on the offline ones, so the
	// mixing decider and the node actuator have nodes to move. Empty: no
	// pools, every node serves inference.
	NodeGroup    string `yaml:"node_group"`
	OfflineNodes int    `yaml:"offline_nodes"`
	// TracesDir holds philly_node_sequence.csv (relative paths are looked
	// up from the working directory upwards).
	TracesDir string `yaml:"traces_dir"`
	// TrainingSeed seeds the generated training jobs.
	TrainingSeed uint64 `yaml:"training_seed"`
}

// DefaultDevConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultDevConfig() DevConfig {
	return DevConfig{
		KafkaPort:       0,
		Partitions:      4,
		NATSPort:        -1,
		HistoryDir:      "",
		Namespace:       "inference",
		Services:        3,
		Nodes:           6,
		GPUsPerNode:     4,
		CapacityRPS:     40,
		BaseLatencyMs:   25,
		MinReplicas:     1,
		MaxReplicas:     8,
		InitialReplicas: 0,
		PeakUtilisation: 0.7,
		StartupDelay:    90 * time.Second,
		Step:            15 * time.Second,
		LatencySLOMs:    100,
		Seed:            1,
		StartHour:       9,
		MaxLag:          3 * time.Minute,
		LaunchAfter:     10 * time.Minute,
		LaunchLoad:      2.5,
		TracesDir:       "../shared/traces",
		TrainingSeed:    1,
	}
}

// Validate names the first bad field.
func (c DevConfig) Validate() error {
	switch {
	case c.KafkaPort < 0 || c.KafkaPort > 65535:
		return fmt.Errorf("kafka_port: %d is not 0..65535", c.KafkaPort)
	case c.Partitions < 1:
		return errors.New("partitions: must be at least 1")
	case c.NATSPort < -1 || c.NATSPort > 65535:
		return fmt.Errorf("nats_port: %d is not -1..65535", c.NATSPort)
	case c.Namespace == "":
		return errors.New("namespace: must not be empty")
	case c.Services < 1 || c.Services > 50:
		return fmt.Errorf("services: %d is not 1..50", c.Services)
	case c.Nodes < 1:
		return errors.New("nodes: must be at least 1")
	case c.GPUsPerNode < 1:
		return errors.New("gpus_per_node: must be at least 1")
	case c.CapacityRPS <= 0:
		return errors.New("capacity_rps: must be positive")
	case c.BaseLatencyMs <= 0:
		return errors.New("base_latency_ms: must be positive")
	case c.MinReplicas < 1:
		return errors.New("min_replicas: must be at least 1")
	case c.MaxReplicas < c.MinReplicas:
		return errors.New("max_replicas: must be at least min_replicas")
	case c.InitialReplicas != 0 && (c.InitialReplicas < c.MinReplicas || c.InitialReplicas > c.MaxReplicas):
		return errors.New("initial_replicas: must be 0 (sized to the starting load) or lie within min_replicas..max_replicas")
	case c.PeakUtilisation <= 0 || c.PeakUtilisation > 2:
		return errors.New("peak_utilisation: must be in (0, 2]")
	case c.LaunchAfter < 0:
		return errors.New("launch_after: must not be negative (0 launches nothing)")
	case c.LaunchAfter > 0 && c.LaunchLoad <= 0:
		return errors.New("launch_load: must be positive")
	case c.StartupDelay < 0:
		return errors.New("startup_delay: must not be negative")
	case c.Step < time.Second:
		return errors.New("step: must be at least 1s")
	case c.LatencySLOMs <= 0:
		return errors.New("latency_slo_ms: must be positive")
	case c.StartHour < 0 || c.StartHour >= 24:
		return errors.New("start_hour: must be in [0, 24)")
	case c.OfflineNodes < 0 || (c.NodeGroup != "" && c.OfflineNodes >= c.Nodes):
		return fmt.Errorf("offline_nodes: %d is not 0..nodes-1", c.OfflineNodes)
	case c.NodeGroup != "" && c.TracesDir == "":
		return errors.New("traces_dir: must be set with node_group")
	case c.MaxLag < c.Step:
		return errors.New("max_lag: must be at least step")
	}
	return nil
}
