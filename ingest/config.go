package ingest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Config is the `ingest` section of the configuration file.
type Config struct {
	// Enabled runs ingest inside `ebbflow dev`.
	Enabled bool `yaml:"enabled"`
	// RemoteWrite is the Prometheus remote_write receiver.
	RemoteWrite RemoteWriteConfig `yaml:"remote_write"`
	// Scrape configures scraping of static and discovered targets.
	Scrape ScrapeConfig `yaml:"scrape"`
	// Publish configures the Kafka producer and its buffer.
	Publish PublishConfig `yaml:"publish"`
	// DefaultRules includes DefaultRules() before Rules.
	DefaultRules bool `yaml:"default_rules"`
	// Rules are extra signal-mapping rules (see Rule).
	Rules []Rule `yaml:"rules"`
	// Unmatched is drop (count and discard series no rule maps) or
	// forward (publish them under entity unmapped/<cluster>/<metric>).
	Unmatched string `yaml:"unmatched"`
}

// RemoteWriteConfig configures the remote_write receiver.
type RemoteWriteConfig struct {
	// Listen is host:port of the receiver; empty disables it.
	Listen string `yaml:"listen"`
	// Path is the HTTP path, /api/v1/write as in Prometheus.
	Path string `yaml:"path"`
	// MaxRequestBytes caps a decompressed request body.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// BackpressureWait is how long a request waits for room in the
	// publish buffer before it is answered 429.
	BackpressureWait time.Duration `yaml:"backpressure_wait"`
	// BearerTokenFile, when set, requires Authorization: Bearer <token>.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// BasicAuthUsername and BasicAuthPasswordFile, when set, require
	// HTTP basic auth.
	BasicAuthUsername     string `yaml:"basic_auth_username"`
	BasicAuthPasswordFile string `yaml:"basic_auth_password_file"`
	// TLSCertFile and TLSKeyFile serve HTTPS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// TLSClientCAFile, with HTTPS, requires senders to present a client
	// certificate signed by this CA (Prometheus: tls_config.cert_file).
	TLSClientCAFile string `yaml:"tls_client_ca_file"`
}

// ScrapeConfig configures scraping.
type ScrapeConfig struct {
	// Interval and Timeout are the defaults for every target.
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	// MaxConcurrent bounds scrapes in progress at once.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxBodyBytes caps a scrape response.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// HonorLabels keeps a scraped label that collides with a target label
	// (otherwise it is renamed exported_<name>, as Prometheus does).
	HonorLabels bool `yaml:"honor_labels"`
	// Static are fixed targets.
	Static []StaticTarget `yaml:"static"`
	// Kubernetes discovers pods by their prometheus.io annotations.
	Kubernetes KubeDiscoveryConfig `yaml:"kubernetes"`
}

// StaticTarget is one fixed scrape target.
type StaticTarget struct {
	// URL is the full metrics URL, e.g. http://10.0.0.5:8002/metrics.
	URL string `yaml:"url"`
	// Labels are attached to every sample (e.g. cluster, namespace,
	// deployment); job defaults to "static".
	Labels map[string]string `yaml:"labels,omitempty"`
	// Interval and Timeout override the scrape defaults when non-zero.
	Interval time.Duration `yaml:"interval,omitempty"`
	Timeout  time.Duration `yaml:"timeout,omitempty"`
}

// KubeDiscoveryConfig configures pod discovery.
type KubeDiscoveryConfig struct {
	// Enabled turns discovery on (it needs a Kubernetes client).
	Enabled bool `yaml:"enabled"`
	// Namespaces to watch; empty watches all.
	Namespaces []string `yaml:"namespaces"`
	// LabelSelector filters pods, e.g. "app.kubernetes.io/part-of=ai".
	LabelSelector string `yaml:"label_selector"`
	// Resync is the informer resync period.
	Resync time.Duration `yaml:"resync"`
}

// PublishConfig configures the Kafka side.
type PublishConfig struct {
	// Topic overrides the metrics.raw topic name (default from the kafka
	// section's prefix).
	Topic string `yaml:"topic"`
	// Compression is snappy (default: the cheapest per byte of the
	// codecs measured on these records, 1.8× faster than sarama's lz4
	// stream writer and smaller), lz4, zstd or none.
	Compression string `yaml:"compression"`
	// MaxBufferBytes bounds encoded bytes in flight to Kafka.
	MaxBufferBytes int64 `yaml:"max_buffer_bytes"`
	// MaxSamplesPerRecord splits an entity's samples into several records.
	MaxSamplesPerRecord int `yaml:"max_samples_per_record"`
	// MaxMessageBytes is the largest Kafka record (and produce batch)
	// ingest writes; it must not exceed the broker's message.max.bytes
	// (Kafka's default 1048588) or the topic's max.message.bytes. An
	// entity's samples are split into records under it; a request with a
	// single sample whose record would exceed it is refused with 413.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// Retries and RetryBackoff are the producer's retries per record.
	Retries      int           `yaml:"retries"`
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// RetryAfter is the Retry-After given with 429/503, and how long
	// Kafka counts as unavailable after a failed write.
	RetryAfter time.Duration `yaml:"retry_after"`
	// Transactional writes each group of requests in one Kafka
	// transaction and aborts it if any record fails, so a request answered
	// 5xx leaves nothing visible to read_committed consumers and its retry
	// is not a duplicate. Off, a request that fails part-way may leave
	// part of its samples in the topic (at-least-once).
	Transactional bool `yaml:"transactional"`
	// TransactionalID identifies this ingest replica to the transaction
	// coordinator; it must differ between replicas. Empty means
	// "ebbflow-ingest-<hostname>".
	TransactionalID string `yaml:"transactional_id"`
	// DedupRequests and DedupMaxAge bound the memory of requests known to
	// be committed (by count and by age): a resend of one of them (its
	// answer was lost, or its commit's outcome had to be resolved) is
	// answered 2xx without being written again. Transactional mode only.
	DedupRequests int           `yaml:"dedup_requests"`
	DedupMaxAge   time.Duration `yaml:"dedup_max_age"`
	// TransactionLanes is how many transactional producers (ids <id>,
	// <id>-lane1, …) write transactions at once: while one lane commits,
	// the next lane's transaction is written, so acknowledged throughput
	// is not bound by one transaction's round trips. Keep it across
	// restarts (each lane's id is fenced at start). Transactional mode.
	TransactionLanes int `yaml:"transaction_lanes"`
	// PersistDigests writes the digests of each transaction's requests
	// to DigestsTopic in the same transaction and reloads them at start,
	// so a resend whose first attempt committed before a crash (or a
	// restart) is still recognised. Transactional mode only.
	PersistDigests bool `yaml:"persist_digests"`
	// DigestsTopic overrides the digests topic name (default
	// <kafka.topic_prefix>.ingest.digests.v1).
	DigestsTopic string `yaml:"digests_topic"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{
		Enabled: true,
		RemoteWrite: RemoteWriteConfig{
			Listen:           "127.0.0.1:9201",
			Path:             "/api/v1/write",
			MaxRequestBytes:  64 << 20,
			BackpressureWait: 2 * time.Second,
		},
		Scrape: ScrapeConfig{
			Interval:      15 * time.Second,
			Timeout:       10 * time.Second,
			MaxConcurrent: 32,
			MaxBodyBytes:  32 << 20,
			Kubernetes:    KubeDiscoveryConfig{Resync: 10 * time.Minute},
		},
		Publish: PublishConfig{
			Compression:         "snappy",
			MaxBufferBytes:      256 << 20,
			MaxSamplesPerRecord: 10000,
			MaxMessageBytes:     1_000_000,
			Retries:             10,
			RetryBackoff:        500 * time.Millisecond,
			RetryAfter:          5 * time.Second,
			Transactional:       true,
			DedupRequests:       100000,
			DedupMaxAge:         30 * time.Minute,
			PersistDigests:      true,
			TransactionLanes:    4,
		},
		DefaultRules: true,
		Unmatched:    UnmatchedDrop,
	}
}

// AllRules returns the default rules (when enabled) followed by Rules.
func (c Config) AllRules() []Rule {
	var out []Rule
	if c.DefaultRules {
		out = append(out, DefaultRules()...)
	}
	return append(out, c.Rules...)
}

// Validate names the first bad field.
func (c Config) Validate() error {
	rw := c.RemoteWrite
	if rw.Listen != "" {
		if _, _, err := net.SplitHostPort(rw.Listen); err != nil {
			return fmt.Errorf("remote_write.listen: %w", err)
		}
		if rw.Path == "" || rw.Path[0] != '/' {
			return fmt.Errorf("remote_write.path: %q must start with /", rw.Path)
		}
	}
	if rw.MaxRequestBytes <= 0 {
		return errors.New("remote_write.max_request_bytes: must be positive")
	}
	if rw.BackpressureWait < 0 {
		return errors.New("remote_write.backpressure_wait: must not be negative")
	}
	if (rw.TLSCertFile == "") != (rw.TLSKeyFile == "") {
		return errors.New("remote_write.tls_cert_file and tls_key_file: set both or neither")
	}
	if rw.TLSClientCAFile != "" && rw.TLSCertFile == "" {
		return errors.New("remote_write.tls_client_ca_file: needs tls_cert_file and tls_key_file (client certificates are checked over HTTPS only)")
	}
	if (rw.BasicAuthUsername == "") != (rw.BasicAuthPasswordFile == "") {
		return errors.New("remote_write.basic_auth_username and basic_auth_password_file: set both or neither")
	}
	if rw.BearerTokenFile != "" && rw.BasicAuthUsername != "" {
		return errors.New("remote_write.bearer_token_file: choose bearer or basic auth, not both")
	}
	s := c.Scrape
	if s.Interval <= 0 || s.Timeout <= 0 {
		return errors.New("scrape.interval and scrape.timeout: must be positive")
	}
	if s.Timeout > s.Interval {
		return fmt.Errorf("scrape.timeout: %s is longer than scrape.interval %s", s.Timeout, s.Interval)
	}
	if s.MaxConcurrent < 1 {
		return errors.New("scrape.max_concurrent: must be at least 1")
	}
	if s.MaxBodyBytes <= 0 {
		return errors.New("scrape.max_body_bytes: must be positive")
	}
	for i, t := range s.Static {
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("scrape.static[%d].url: %q is not an http(s) URL", i, t.URL)
		}
		if t.Interval < 0 || t.Timeout < 0 || (t.Interval > 0 && t.Timeout > t.Interval) {
			return fmt.Errorf("scrape.static[%d]: interval/timeout: timeout must be positive and at most the interval", i)
		}
	}
	if s.Kubernetes.Enabled && s.Kubernetes.Resync < 0 {
		return errors.New("scrape.kubernetes.resync: must not be negative")
	}
	p := c.Publish
	switch p.Compression {
	case "snappy", "lz4", "zstd", "none":
	default:
		return fmt.Errorf("publish.compression: %q is not snappy, lz4, zstd or none", p.Compression)
	}
	if p.MaxBufferBytes < 1<<20 {
		return errors.New("publish.max_buffer_bytes: must be at least 1 MiB")
	}
	if p.MaxSamplesPerRecord < 1 {
		return errors.New("publish.max_samples_per_record: must be at least 1")
	}
	if p.MaxMessageBytes < minMessageBytes {
		return fmt.Errorf("publish.max_message_bytes: %d is below %d", p.MaxMessageBytes, minMessageBytes)
	}
	if p.Transactional && p.TransactionLanes < 1 {
		return errors.New("publish.transaction_lanes: must be at least 1")
	}
	if p.Retries < 1 {
		return errors.New("publish.retries: must be at least 1 (the idempotent producer needs retries)")
	}
	if p.RetryBackoff < 0 || p.RetryAfter <= 0 {
		return errors.New("publish.retry_backoff and retry_after: retry_after must be positive")
	}
	if c.Unmatched != UnmatchedDrop && c.Unmatched != UnmatchedForward {
		return fmt.Errorf("unmatched: %q is not drop or forward", c.Unmatched)
	}
	for i, r := range c.Rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rules[%d]: %w", i, err)
		}
	}
	return nil
}
