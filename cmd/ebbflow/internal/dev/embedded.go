package dev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/schemas"
)

// Endpoints says where each embedded part listens.
type Endpoints struct {
	// KafkaBrokers are the embedded Kafka's bootstrap addresses.
	KafkaBrokers []string
	// Topics maps topic base names (schemas.TopicDecisions, …) to full names.
	Topics map[string]string
	// NATSURL is the embedded nats-server's client URL.
	NATSURL string
	// HistoryDir is the local history directory.
	HistoryDir string
	// MetricsURL is ebbflow's own /metrics.
	MetricsURL string
	// SimURL is the base URL of the simulated pods' /metrics endpoints.
	SimURL string
	// LogFile is where the components log while the terminal view is
	// drawn ("" when they log to stderr).
	LogFile string
}

// parts are the embedded infrastructure one dev run owns.
type parts struct {
	ep        Endpoints
	kafka     *kafkax.Embedded
	nats      *natsbus.Embedded
	tmpDir    string
	telemetry *http.Server
	wg        sync.WaitGroup
}

// startParts starts embedded Kafka with every topic, nats-server with the
// JetStream streams, the history directory and the telemetry server. The
// returned configuration points every component at them.
func startParts(ctx context.Context, cfg wire.Config, reg *prometheus.Registry, ready *telemetry.Readiness, log *slog.Logger) (*parts, wire.Config, error) {
	p := &parts{ep: Endpoints{Topics: map[string]string{}}}
	topics := cfg.Kafka.Topics()
	for _, b := range schemas.AllTopics {
		p.ep.Topics[b] = topics.Name(b)
	}
	var err error
	p.kafka, err = kafkax.StartEmbedded(cfg.Dev.KafkaPort, cfg.Dev.Partitions, topics.All()...)
	if err != nil {
		return nil, cfg, err
	}
	p.ep.KafkaBrokers = p.kafka.Addrs()
	cfg.Kafka.Brokers = p.ep.KafkaBrokers
	cfg.Kafka.Partitions = cfg.Dev.Partitions
	cfg.Kafka.ReplicationFactor = 1
	cfg.Kafka.TLS = kafkax.TLSConfig{}
	cfg.Kafka.SASL = kafkax.SASLConfig{}

	p.nats, err = natsbus.StartEmbedded(cfg.Dev.NATSPort, "")
	if err != nil {
		p.close()
		return nil, cfg, err
	}
	p.ep.NATSURL = p.nats.URL()
	cfg.NATS.URL = p.ep.NATSURL
	cfg.NATS.CredsFile = ""
	if err := ensureStreams(ctx, cfg.NATS); err != nil {
		p.close()
		return nil, cfg, err
	}

	dir := cfg.Dev.HistoryDir
	if dir == "" {
		dir, err = os.MkdirTemp("", "ebbflow-dev-history-*")
		if err != nil {
			p.close()
			return nil, cfg, fmt.Errorf("dev: history dir: %w", err)
		}
		p.tmpDir = dir
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		p.close()
		return nil, cfg, fmt.Errorf("dev: history dir %s: %w", dir, err)
	}
	p.ep.HistoryDir = dir
	cfg.History.Backend = "local"
	cfg.History.Root = dir

	if cfg.Telemetry.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Telemetry.Listen)
		if err != nil {
			p.close()
			return nil, cfg, fmt.Errorf("dev: telemetry listen on %s: %w (set telemetry.listen to a free address or 127.0.0.1:0)", cfg.Telemetry.Listen, err)
		}
		p.ep.MetricsURL = "http://" + ln.Addr().String() + "/metrics"
		p.telemetry = &http.Server{Handler: telemetry.Handler(reg, ready), ReadHeaderTimeout: 10 * time.Second}
		p.wg.Go(func() {
			if err := p.telemetry.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("telemetry server", "err", err)
			}
		})
	}
	return p, cfg, nil
}

func ensureStreams(ctx context.Context, c natsbus.Config) error {
	nc, js, err := natsbus.ConnectJetStream(c, "ebbflow-dev")
	if err != nil {
		return err
	}
	defer nc.Close()
	return natsbus.EnsureStreams(ctx, js, c.MaxAge)
}

// close stops everything started, in reverse order.
func (p *parts) close() {
	if p.telemetry != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.telemetry.Shutdown(sctx)
		cancel()
	}
	p.wg.Wait()
	if p.nats != nil {
		p.nats.Close()
	}
	if p.kafka != nil {
		p.kafka.Close()
	}
	if p.tmpDir != "" {
		os.RemoveAll(p.tmpDir)
	}
}
