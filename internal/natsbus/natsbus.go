// Package natsbus holds the NATS plumbing: the configuration section, the
// connection, the JetStream streams that capture decisions and alerts, and
// the in-process nats-server `ebbflow dev` and the tests run.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebbflow/ebbflow/schemas"
)

// Config is the `nats` section of the configuration file.
type Config struct {
	// URL of the NATS servers, comma-separated. Empty disables publishing
	// to NATS (decisions still go to Kafka).
	URL string `yaml:"url"`
	// CredsFile is an optional NATS credentials file.
	CredsFile string `yaml:"creds_file"`
	// MaxAge bounds how long the JetStream streams keep messages.
	MaxAge time.Duration `yaml:"max_age"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{URL: "", MaxAge: 7 * 24 * time.Hour}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.MaxAge < 0 {
		return errors.New("max_age: must not be negative")
	}
	return nil
}

// Connect connects to the configured servers.
func Connect(c Config, name string) (*nats.Conn, error) {
	if c.URL == "" {
		return nil, errors.New("nats: url is empty")
	}
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w", c.URL, err)
	}
	return nc, nil
}

// ConnectJetStream connects to the configured servers and returns the
// JetStream context publishers use; the caller closes the connection.
func ConnectJetStream(c Config, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := Connect(c, name)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats: jetstream on %s: %w", c.URL, err)
	}
	return nc, js, nil
}

// EnsureStreams creates or updates the JetStream streams that capture
// ebbflow.decisions.> and ebbflow.alerts.>, so a subscriber that connects
// later can still replay what it missed.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, maxAge time.Duration) error {
	for _, s := range []jetstream.StreamConfig{
		{Name: schemas.StreamDecisions, Subjects: []string{schemas.SubjectDecisionsPrefix + ".>"}, MaxAge: maxAge, Storage: jetstream.FileStorage},
		{Name: schemas.StreamAlerts, Subjects: []string{schemas.SubjectAlertsPrefix + ".>"}, MaxAge: maxAge, Storage: jetstream.FileStorage},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, s); err != nil {
			return fmt.Errorf("nats: stream %s: %w", s.Name, err)
		}
	}
	return nil
}

// Embedded is an in-process nats-server with JetStream.
type Embedded struct {
	srv *server.Server
	dir string
	own bool
}

// StartEmbedded starts nats-server on 127.0.0.1:port (-1 picks a free port)
// with JetStream storing under dir (a temporary directory when empty).
func StartEmbedded(port int, dir string) (*Embedded, error) {
	own := false
	if dir == "" {
		d, err := os.MkdirTemp("", "ebbflow-nats-*")
		if err != nil {
			return nil, fmt.Errorf("nats: store dir: %w", err)
		}
		dir, own = d, true
	}
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  dir,
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: start embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats: embedded server not ready within 10s")
	}
	return &Embedded{srv: srv, dir: dir, own: own}, nil
}

// URL returns the client URL.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Close stops the server and removes a temporary store.
func (e *Embedded) Close() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	if e.own {
		os.RemoveAll(e.dir)
	}
}

// Msg builds the NATS message of an event: its JSON body and the same
// CloudEvents binary-mode headers as on Kafka (schemas.Headers), plus
// Nats-Msg-Id = the event id, so JetStream drops a redelivered event.
func Msg(subject, source string, ev schemas.Event, body []byte) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set("Nats-Msg-Id", ev.EventID())
	for _, h := range schemas.Headers(source, ev) {
		msg.Header.Set(h.Key, h.Value)
	}
	return msg
}

// Publish validates an event and publishes it to JetStream on subject with
// its CloudEvents headers, deduplicated by its id, waiting at most 5 s for
// the acknowledgement.
func Publish(ctx context.Context, js jetstream.JetStream, subject, source string, ev schemas.Event) error {
	b, err := schemas.Marshal(ev)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, Msg(subject, source, ev, b)); err != nil {
		return fmt.Errorf("nats: publish %s to %s: %w", ev.EventID(), subject, err)
	}
	return nil
}

// PublishAlert publishes an alert on ebbflow.alerts.<severity>.<kind>.
func PublishAlert(ctx context.Context, js jetstream.JetStream, a schemas.Alert) error {
	return Publish(ctx, js, schemas.AlertSubject(a.Severity, a.Kind), a.Source, a)
}
