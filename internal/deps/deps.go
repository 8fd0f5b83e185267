//go:build tools

// Package deps pins modules the components are being built on, so go.mod
// stays complete while they land. It is never compiled (build tag tools).
package deps

import (
	_ "github.com/DataDog/sketches-go/ddsketch"
	_ "github.com/IBM/sarama"
	_ "github.com/apache/arrow/go/v15/parquet/pqarrow"
	_ "github.com/colinmarc/hdfs/v2"
	_ "github.com/klauspost/compress/snappy"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/common/expfmt"
	_ "github.com/spf13/cobra"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "go.uber.org/goleak"
	_ "gonum.org/v1/plot"
	_ "google.golang.org/protobuf/encoding/protowire"
	_ "gopkg.in/yaml.v3"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/kubernetes/fake"
	_ "k8s.io/client-go/tools/leaderelection"
	_ "pgregory.net/rapid"
)
