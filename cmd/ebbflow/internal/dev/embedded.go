package dev

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/schemas"
	"github.com/ebbflow/ebbflow/ui"
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
	// UIURL is the web UI ("" when ui.listen is empty); UIToken the token
	// its forms need (generated for the run unless ui.token is set).
	UIURL, UIToken string
}

// parts are the embedded infrastructure one dev run owns.
type parts struct {
	ep     Endpoints
	kafka  *kafkax.Embedded
	nats   *natsbus.Embedded
	tmpDir string
	// telemetry is the telemetry server's listener, served by wire.Run.
	telemetry net.Listener
	// ui is the web UI's listener, served by the ui component.
	ui net.Listener
}

// startParts starts embedded Kafka with every topic, nats-server with the
// JetStream streams, the history directory, and opens the telemetry
// listener (served by wire.Run, with the components). The returned
// configuration points every component at them.
func startParts(ctx context.Context, cfg wire.Config) (*parts, wire.Config, error) {
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
		p.telemetry = ln
	}
	if cfg.UI.Listen != "" {
		// The configured address, else any free port: a second dev run
		// still gets its UI.
		ln, err := ui.Listen(cfg.UI.Listen)
		if err != nil {
			ln, err = ui.Listen("127.0.0.1:0")
		}
		if err != nil {
			p.close()
			return nil, cfg, fmt.Errorf("dev: %w", err)
		}
		p.ui = ln
		p.ep.UIURL = ui.URL(cfg.UI, ln)
		if cfg.UI.Token == "" && cfg.UI.TokenFile == "" {
			b := make([]byte, 12)
			if _, err := rand.Read(b); err != nil {
				p.close()
				return nil, cfg, err
			}
			cfg.UI.Token = hex.EncodeToString(b)
		}
		p.ep.UIToken = cfg.UI.Token
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

// close stops everything started, in reverse order. (wire.Run closes the
// telemetry listener when it serves it; closing it again is harmless.)
func (p *parts) close() {
	if p.ui != nil {
		_ = p.ui.Close()
	}
	if p.telemetry != nil {
		_ = p.telemetry.Close()
	}
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
