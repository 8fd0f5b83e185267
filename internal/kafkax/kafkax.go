// Package kafkax holds the Kafka plumbing every component shares: the
// configuration section, the sarama client configuration it produces (TLS,
// SASL, version, client id), topic creation, and the embedded kfake
// cluster `ebbflow dev` runs on.
package kafkax

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/tlsx"
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

// TLSConfig enables TLS to the brokers: ca_file verifies them (system
// roots when empty), cert_file/key_file are an optional client
// certificate (see internal/tlsx).
type TLSConfig struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the host name verified in the brokers'
	// certificates (empty: the host of each broker address).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify turns off verification of the brokers'
	// certificates (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Files is the section as internal/tlsx's client settings.
func (t TLSConfig) Files() tlsx.Files {
	return tlsx.Files{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

// SASLConfig enables SASL authentication.
type SASLConfig struct {
	// Mechanism is "" (off), "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	// PLAIN sends the password itself and belongs only on a TLS
	// connection; SCRAM proves knowledge of it without sending it.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password, or PasswordFile (read at start, trailing newline
	// trimmed) to keep it out of the configuration file.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// password returns the configured password, reading PasswordFile.
func (s SASLConfig) password() (string, error) {
	if s.PasswordFile == "" {
		return s.Password, nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("kafka.sasl.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
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
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		if c.SASL.Username == "" {
			return fmt.Errorf("sasl.username: required with mechanism %s", c.SASL.Mechanism)
		}
		if c.SASL.Password != "" && c.SASL.PasswordFile != "" {
			return errors.New("sasl.password and sasl.password_file: set one, not both")
		}
	default:
		return fmt.Errorf("sasl.mechanism: %q is not supported (use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or leave empty)", c.SASL.Mechanism)
	}
	if err := c.TLS.Files().Validate("tls"); err != nil {
		return err
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
		tc, err := c.TLS.Files().Client("kafka.tls")
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.SASL.Mechanism != "" {
		pw, err := c.SASL.password()
		if err != nil {
			return nil, err
		}
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASL.Mechanism)
		sc.Net.SASL.User = c.SASL.Username
		sc.Net.SASL.Password = pw
		switch c.SASL.Mechanism {
		case sarama.SASLTypeSCRAMSHA256:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scramSHA256} }
		case sarama.SASLTypeSCRAMSHA512:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scramSHA512} }
		}
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
	admin, err := c.admin()
	if err != nil {
		return err
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
		if err := createTopic(admin, n, sarama.TopicDetail{NumPartitions: c.Partitions, ReplicationFactor: c.ReplicationFactor}); err != nil {
			return err
		}
	}
	return nil
}

// EnsureTopic creates one topic with a layout of its own (partitions,
// cleanup policy, retention: e.g. a compacted or single-partition topic)
// unless it exists or topic creation is off. A zero ReplicationFactor
// takes the configured one.
func EnsureTopic(ctx context.Context, c Config, name string, d sarama.TopicDetail) error {
	if !c.CreateTopics {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	admin, err := c.admin()
	if err != nil {
		return err
	}
	defer admin.Close()
	if d.ReplicationFactor == 0 {
		d.ReplicationFactor = c.ReplicationFactor
	}
	return createTopic(admin, name, d)
}

// createTopic creates name; a topic that already exists is not an error.
func createTopic(admin sarama.ClusterAdmin, name string, d sarama.TopicDetail) error {
	err := admin.CreateTopic(name, &d, false)
	var te *sarama.TopicError
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) && !(errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %s: %w", name, err)
	}
	return nil
}

// DeletePrefixed deletes every topic whose name starts with c.TopicPrefix
// followed by a dot (a benchmark's or load run's own topics, so that runs
// do not pile partitions and data up on a long-lived broker). It refuses an
// empty prefix.
func DeletePrefixed(c Config) error {
	if c.TopicPrefix == "" {
		return errors.New("kafka: delete topics: no topic_prefix (refusing to delete every topic)")
	}
	admin, err := c.admin()
	if err != nil {
		return err
	}
	defer admin.Close()
	ts, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka: list topics on %v: %w", c.Brokers, err)
	}
	var errs []error
	for name := range ts {
		if strings.HasPrefix(name, c.TopicPrefix+".") {
			if err := admin.DeleteTopic(name); err != nil {
				errs = append(errs, fmt.Errorf("kafka: delete topic %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// admin connects a cluster admin to the configured brokers.
func (c Config) admin() (sarama.ClusterAdmin, error) {
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdmin(c.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka: connect admin to %v: %w", c.Brokers, err)
	}
	return admin, nil
}
