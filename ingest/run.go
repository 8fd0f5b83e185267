package ingest

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/internal/tlsx"
	"github.com/ebbflow/ebbflow/schemas"
)

// Deps are what Run needs from its host process.
type Deps struct {
	// Kafka is the kafka section: brokers, topic prefix, topic creation.
	Kafka kafkax.Config
	// NewProducer, when set, builds the producer instead of NewProducer
	// (it must return successes and errors, see ProducerConfig); Run
	// calls it again to replace a transactional producer that failed
	// fatally, and closes what it built. With it, ingest runs one
	// transaction lane (publish.transaction_lanes is not used).
	NewProducer func() (sarama.AsyncProducer, error)
	// NewClient, when set, builds the Kafka client that resolves the
	// outcome of a transaction whose commit answer was lost (see
	// FetchResolver); by default one from Kafka's connection settings.
	NewClient func() (sarama.Client, error)
	// Kube is the Kubernetes client for pod discovery; required only when
	// scrape.kubernetes.enabled is set. A client-go fake clientset works.
	Kube kubernetes.Interface
	// Logger and Registerer receive ingest's logs and metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Cluster names this cluster in entity keys when a series has no
	// cluster label.
	Cluster string
	// Readiness, when set, gets a check that fails while Kafka is failing.
	Readiness *telemetry.Readiness
	// PublishHooks, for fault-injection tests, act at points of each
	// Kafka transaction (see PublishHooks); zero does nothing.
	PublishHooks PublishHooks
	// OnListen, when set, is called with the receiver's address once it
	// listens (useful with port 0).
	OnListen func(addr string)
}

// Run runs ingest until ctx ends: the remote_write receiver (when
// remote_write.listen is set), scraping of static and discovered targets,
// and publishing to metrics.raw. On return every request that was answered
// 2xx is in Kafka.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("ingest: config: %w", err)
	}
	// The composition root hands in a logger that already names the
	// component; name it only on the default one.
	log := deps.Logger
	if log == nil {
		log = slog.Default().With("component", "ingest")
	}
	mapper, err := NewMapper(cfg.AllRules(), deps.Cluster, cfg.Unmatched)
	if err != nil {
		return fmt.Errorf("ingest: rules: %w", err)
	}
	topic := cfg.Publish.Topic
	if topic == "" {
		topic = deps.Kafka.Topics().Name(schemas.TopicMetricsRaw)
	}
	newProd := deps.NewProducer
	if newProd == nil {
		if err := kafkax.EnsureTopics(ctx, deps.Kafka, topic); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		newProd = func() (sarama.AsyncProducer, error) { return NewProducer(deps.Kafka, cfg.Publish) }
	}
	persist := cfg.Publish.Transactional && cfg.Publish.DedupRequests > 0 && cfg.Publish.PersistDigests
	digestsTopic := cfg.Publish.DigestsTopic
	if digestsTopic == "" {
		digestsTopic = deps.Kafka.Topics().Name(DigestsTopicBase)
	}
	opts := []PublisherOption{WithHooks(deps.PublishHooks)}
	if persist {
		if err := EnsureDigestsTopic(ctx, deps.Kafka, digestsTopic, cfg.Publish.DedupMaxAge); err != nil {
			return err
		}
		opts = append(opts, WithDigestsTopic(digestsTopic))
	}
	// A transactional producer's InitProducerID (in newProd) completes or
	// aborts what a previous process with the same transactional id left
	// open, so the digests read below include every committed request.
	prod, err := newProd()
	if err != nil {
		return err
	}
	if deps.NewProducer == nil {
		lanes, err := ExtraLanes(deps.Kafka, cfg.Publish)
		if err != nil {
			prod.Close()
			return err
		}
		opts = append(opts, lanes...)
	}
	m := NewMetrics(deps.Registerer)
	pub := NewPublisher(prod, topic, cfg.Publish, m, log, newProd, opts...)
	newClient := deps.NewClient
	if newClient == nil {
		newClient = func() (sarama.Client, error) {
			sc, err := deps.Kafka.Sarama()
			if err != nil {
				return nil, err
			}
			return sarama.NewClient(deps.Kafka.Brokers, sc)
		}
	}
	if persist {
		if err := loadDigests(ctx, newClient, digestsTopic, pub, m, log); err != nil {
			pub.Close()
			return err
		}
	}
	resolver, closeResolver := LazyFetchResolver(newClient)
	defer closeResolver()
	pub.ResolveWith(resolver)
	defer pub.Close()
	if deps.Readiness != nil {
		deps.Readiness.Add("ingest-kafka", pub.Healthy)
	}

	// Metric metadata (remote_write's, scraped # TYPE/# HELP) goes to its
	// own compacted topic (see MetadataWriter); closed after the receiver
	// and the scraper stop.
	var mw *MetadataWriter
	if deps.NewProducer == nil {
		metaTopic := deps.Kafka.Topics().Name(schemas.TopicMetricsMetadata)
		if mw, err = newMetadataWriter(ctx, deps.Kafka, metaTopic, m, log); err != nil {
			return err
		}
		defer mw.Close()
	}
	// Producers (receiver, scraper) stop before the publisher closes.
	g, gctx := errgroup.WithContext(ctx)
	if cfg.RemoteWrite.Listen != "" {
		srv, ln, err := newReceiverServer(cfg.RemoteWrite, mapper, pub, m, log, mw)
		if err != nil {
			return err
		}
		log.Info("remote_write receiver listening", "addr", ln.Addr().String(), "path", cfg.RemoteWrite.Path, "topic", topic,
			"https", srv.TLSConfig != nil, "client_certificates", cfg.RemoteWrite.TLSClientCAFile != "", "auth", authKind(cfg.RemoteWrite))
		if deps.OnListen != nil {
			deps.OnListen(ln.Addr().String())
		}
		g.Go(func() error {
			var err error
			if srv.TLSConfig != nil {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("ingest: remote_write server on %s: %w", ln.Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// Shutdown waits for requests in flight to get their answer.
			return srv.Shutdown(sctx)
		})
	}
	scraper := NewScraper(cfg.Scrape, mapper, pub, m, log)
	scraper.SetMetadataWriter(mw)
	scraper.SetTargets("static", StaticTargets(cfg.Scrape))
	g.Go(func() error { return scraper.Run(gctx) })
	if cfg.Scrape.Kubernetes.Enabled {
		if deps.Kube == nil {
			return errors.New("ingest: scrape.kubernetes.enabled needs a Kubernetes client")
		}
		d := NewDiscovery(deps.Kube, cfg.Scrape.Kubernetes, log, func(ts []Target) { scraper.SetTargets("kubernetes", ts) })
		g.Go(func() error { return d.Run(gctx) })
	}
	g.Go(func() error {
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				if n := mapper.ForgetIdle(); n > 0 {
					log.Debug("forgot idle ratio series", "n", n)
				}
			}
		}
	})
	return g.Wait()
}

func newReceiverServer(cfg RemoteWriteConfig, mapper *Mapper, pub *Publisher, m *Metrics, log *slog.Logger, mw *MetadataWriter) (*http.Server, net.Listener, error) {
	var auth func(*http.Request) bool
	switch {
	case cfg.BearerTokenFile != "":
		tok, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("ingest: remote_write.bearer_token_file: %w", err)
		}
		auth = Authenticator(strings.TrimSpace(string(tok)), "", "")
	case cfg.BasicAuthUsername != "":
		pw, err := os.ReadFile(cfg.BasicAuthPasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("ingest: remote_write.basic_auth_password_file: %w", err)
		}
		auth = Authenticator("", cfg.BasicAuthUsername, strings.TrimSpace(string(pw)))
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, ErrorLog: stdlog.New(serverLog{m: m, log: log}, "", 0)}
	if cfg.TLSCertFile != "" {
		// Certificate problems surface here, naming the file, not at the first handshake.
		tc, err := tlsx.Files{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, CAFile: cfg.TLSClientCAFile,
			Settings: tlsx.Settings{Cert: "ingest.remote_write.tls_cert_file", Key: "ingest.remote_write.tls_key_file", CA: "ingest.remote_write.tls_client_ca_file"}}.Server("")
		if err != nil {
			return nil, nil, err
		}
		srv.TLSConfig = tc
	}
	mux := http.NewServeMux()
	rc := NewReceiver(mapper, pub, cfg, m, log, auth)
	rc.SetMetadataWriter(mw)
	mux.Handle(cfg.Path, rc)
	srv.Handler = mux
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("ingest: remote_write listen on %s: %w", cfg.Listen, err)
	}
	return srv, ln, nil
}

// authKind names the configured request authentication for the start-up log.
func authKind(cfg RemoteWriteConfig) string {
	switch {
	case cfg.BearerTokenFile != "":
		return "bearer"
	case cfg.BasicAuthUsername != "":
		return "basic"
	}
	return "none"
}

// serverLog takes net/http's server errors: a failed TLS handshake is
// counted (ebbflow_ingest_tls_handshake_failures_total) and logged at
// debug, since a misconfigured sender retries several times a second;
// anything else is a warning.
type serverLog struct {
	m   *Metrics
	log *slog.Logger
}

func (s serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		s.m.TLSHandshakeFailures.Inc()
		s.log.Debug("remote_write: TLS handshake failed", "detail", msg)
	} else {
		s.log.Warn("remote_write server", "detail", msg)
	}
	return len(p), nil
}

// loadDigests reloads the digests of committed requests into pub before
// any request is accepted.
func loadDigests(ctx context.Context, newClient func() (sarama.Client, error), topic string, pub *Publisher, m *Metrics, log *slog.Logger) error {
	client, err := newClient()
	if err != nil {
		return fmt.Errorf("ingest: client to read %s: %w", topic, err)
	}
	defer client.Close()
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	kept := 0
	records, err := LoadDigests(lctx, client, topic, func(at int64, d Digest) {
		if pub.RememberDigest(at, d) {
			kept++
		}
	})
	if err != nil {
		return fmt.Errorf("ingest: reload the digests of committed requests (publish.persist_digests): %w", err)
	}
	m.DigestsLoaded.Add(float64(kept))
	log.Info("reloaded the digests of committed requests", "topic", topic, "records", records, "digests", kept, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// ExtraLanes builds the producers of transaction lanes 1 …
// publish.transaction_lanes-1 (lane 0 is the publisher's own producer) as
// WithLane options; none when transactions are off.
func ExtraLanes(kc kafkax.Config, pc PublishConfig) ([]PublisherOption, error) {
	if !pc.Transactional {
		return nil, nil
	}
	var opts []PublisherOption
	for i := 1; i < pc.TransactionLanes; i++ {
		lc := laneConfig(pc, i)
		newLane := func() (sarama.AsyncProducer, error) { return NewProducer(kc, lc) }
		lp, err := newLane()
		if err != nil {
			return nil, err
		}
		opts = append(opts, WithLane(lp, newLane))
	}
	return opts, nil
}
