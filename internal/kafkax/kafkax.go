// Package kafkax holds the Kafka plumbing every component shares: the
// configuration section, the sarama client configuration it produces (TLS,
// SASL, version, client id), topic creation, and the embedded kfake
// cluster `ebbflow dev` runs on.
package kafkax

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/schemas"
)

// Config is the `kafka` section of the configuration file.
type Config struct {
	// Brokers are host:port bootstrap addresses.
	Brokers []string `yaml:"brokers"`
	// ClientID names this process to the brokers.
	ClientID string `yaml:"client_id"`
	// Version is the lowest broker version to speak, e.g. "3.7.0".
	Version string `yaml:"version"`
	// TopicPrefix prefixes every topic name: <prefix>.<name>.v1.
	TopicPrefix string `yaml:"topic_prefix"`
	// CreateTopics creates missing topics at start-up with Partitions and
	// ReplicationFactor.
	CreateTopics      bool       `yaml:"create_topics"`
	Partitions        int32      `yaml:"partitions"`
	ReplicationFactor int16      `yaml:"replication_factor"`
	TLS               TLSConfig  `yaml:"tls"`
	SASL              SASLConfig `yaml:"sasl"`
	// Interceptors run on every record a producer built from this
	// configuration sends (sarama Producer.Interceptors). Not read from
	// YAML: the composition root installs the deciders' decision signer
	// (internal/decisionsig) here.
	Interceptors []sarama.ProducerInterceptor `yaml:"-"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig enables SASL/PLAIN authentication.
type SASLConfig struct {
	// Mechanism is "" (off) or "PLAIN".
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{
		Brokers:           []string{"127.0.0.1:9092"},
		ClientID:          "ebbflow",
		Version:           "3.6.0",
		TopicPrefix:       schemas.DefaultTopicPrefix,
		CreateTopics:      true,
		Partitions:        8,
		ReplicationFactor: 1,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one broker address is required")
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			return fmt.Errorf("brokers: %q is not host:port", b)
		}
	}
	if _, err := sarama.ParseKafkaVersion(c.Version); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if c.TopicPrefix == "" || strings.ContainsAny(c.TopicPrefix, " /\\") {
		return fmt.Errorf("topic_prefix: %q must be non-empty and contain no spaces or slashes", c.TopicPrefix)
	}
	if c.CreateTopics && (c.Partitions < 1 || c.ReplicationFactor < 1) {
		return errors.New("partitions and replication_factor: must be at least 1 when create_topics is on")
	}
	switch c.SASL.Mechanism {
	case "":
	case sarama.SASLTypePlaintext:
		if c.SASL.Username == "" {
			return errors.New("sasl.username: required with mechanism PLAIN")
		}
	default:
		return fmt.Errorf("sasl.mechanism: %q is not supported (use PLAIN or leave empty)", c.SASL.Mechanism)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls.cert_file and tls.key_file: set both or neither")
	}
	return nil
}

// Topics returns the topic namer for the configured prefix.
func (c Config) Topics() schemas.Topics { return schemas.Topics{Prefix: c.TopicPrefix} }

// Sarama returns a sarama configuration with the connection settings filled
// in. Components set their producer/consumer options on the result.
func (c Config) Sarama() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	v, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		return nil, fmt.Errorf("kafka.version: %w", err)
	}
	sc.Version = v
	sc.ClientID = c.ClientID
	sc.Metadata.RefreshFrequency = time.Minute
	if c.TLS.Enabled {
		tc := &tls.Config{InsecureSkipVerify: c.TLS.InsecureSkipVerify} //nolint:gosec // opt-in by config
		if c.TLS.CAFile != "" {
			pem, err := os.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.ca_file: %s holds no PEM certificate", c.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if c.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls: client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.SASL.Mechanism != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASL.Mechanism)
		sc.Net.SASL.User = c.SASL.Username
		sc.Net.SASL.Password = c.SASL.Password
	}
	sc.Producer.Interceptors = c.Interceptors
	return sc, nil
}

// EnsureTopics creates the named topics if they do not exist (with the
// configured partitions and replication factor). It is a no-op when
// CreateTopics is off.
func EnsureTopics(ctx context.Context, c Config, names ...string) error {
	if !c.CreateTopics || len(names) == 0 {
		return nil
	}
	sc, err := c.Sarama()
	if err != nil {
		return err
	}
	admin, err := sarama.NewClusterAdmin(c.Brokers, sc)
	if err != nil {
		return fmt.Errorf("kafka: connect admin to %v: %w", c.Brokers, err)
	}
	defer admin.Close()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka: list topics on %v: %w", c.Brokers, err)
	}
	for _, n := range names {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, ok := existing[n]; ok {
			continue
		}
		err := admin.CreateTopic(n, &sarama.TopicDetail{NumPartitions: c.Partitions, ReplicationFactor: c.ReplicationFactor}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			var te *sarama.TopicError
			if !(errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists) {
				return fmt.Errorf("kafka: create topic %s: %w", n, err)
			}
		}
	}
	return nil
}
