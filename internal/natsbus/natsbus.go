// Package natsbus holds the NATS plumbing: the configuration section, the
// connection, the JetStream streams that capture decisions and alerts, and
// the in-process nats-server `ebbflow dev` and unit tests run (integration
// tests use the real nats-server of deploy/dev/nats.sh).
package natsbus

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebbflow/ebbflow/internal/tlsx"
	"github.com/ebbflow/ebbflow/schemas"
)

// Config is the `nats` section of the configuration file.
type Config struct {
	// URL of the NATS servers, comma-separated. Empty disables publishing
	// to NATS (decisions still go to Kafka).
	URL string `yaml:"url"`
	// User authenticates with a user name and Password (or PasswordFile,
	// read at start, trailing newline trimmed). At most one of User,
	// CredsFile and NKeySeedFile is set.
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// CredsFile is a NATS credentials file (user JWT and nkey seed, as
	// `nsc` writes it) for servers in operator/JWT mode.
	CredsFile string `yaml:"creds_file"`
	// NKeySeedFile is a file holding a user nkey seed (SU...); the server
	// lists the matching public key.
	NKeySeedFile string `yaml:"nkey_seed_file"`
	// TLS to the servers (a tls:// URL also turns it on).
	TLS TLSConfig `yaml:"tls"`
	// MaxAge bounds how long the JetStream streams keep messages.
	MaxAge time.Duration `yaml:"max_age"`
}

// TLSConfig configures TLS to the NATS servers: ca_file verifies them
// (system roots when empty), cert_file/key_file are an optional client
// certificate for servers that verify clients.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Files is the section as internal/tlsx's client settings.
func (t TLSConfig) Files() tlsx.Files {
	return tlsx.Files{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
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
	n := 0
	for _, set := range []bool{c.User != "", c.CredsFile != "", c.NKeySeedFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("user, creds_file and nkey_seed_file: set at most one")
	}
	if c.Password != "" && c.PasswordFile != "" {
		return errors.New("password and password_file: set one, not both")
	}
	if c.User == "" && (c.Password != "" || c.PasswordFile != "") {
		return errors.New("password: needs user")
	}
	return c.TLS.Files().Validate("tls")
}

// options are the connection options of the configured authentication
// and TLS.
func (c Config) options() ([]nats.Option, string, error) {
	var opts []nats.Option
	who := "anonymous"
	switch {
	case c.User != "":
		pw := c.Password
		if c.PasswordFile != "" {
			b, err := os.ReadFile(c.PasswordFile)
			if err != nil {
				return nil, "", fmt.Errorf("nats.password_file: %w", err)
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		opts = append(opts, nats.UserInfo(c.User, pw))
		who = "user " + c.User
	case c.CredsFile != "":
		if err := checkCreds(c.CredsFile); err != nil {
			return nil, "", err
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
		who = "credentials " + c.CredsFile
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, "", fmt.Errorf("nats.nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
		who = "nkey " + c.NKeySeedFile
	}
	if c.TLS.Enabled || strings.HasPrefix(c.URL, "tls://") {
		tc, err := c.TLS.Files().Client("nats.tls")
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, who, nil
}

// checkCreds reads a .creds file before connecting, so that a missing or
// malformed file is reported as a bad nats.creds_file naming the file
// (nats.go would only fail later, inside the connection attempt, without
// naming the setting): it must hold a decodable user JWT and a user nkey
// seed.
func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("nats.creds_file %q: %w", path, err)
	}
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return fmt.Errorf("nats.creds_file %q: no user JWT: %w", path, err)
	}
	if _, err := jwt.DecodeUserClaims(tok); err != nil {
		return fmt.Errorf("nats.creds_file %q: the JWT is not a valid user JWT: %w", path, err)
	}
	if _, err := jwt.ParseDecoratedUserNKey(b); err != nil {
		return fmt.Errorf("nats.creds_file %q: no user nkey seed: %w", path, err)
	}
	return nil
}

// Connect connects to the configured servers.
func Connect(c Config, name string) (*nats.Conn, error) {
	if c.URL == "" {
		return nil, errors.New("nats: url is empty")
	}
	auth, who, err := c.options()
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}, auth...)
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		switch {
		case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked):
			return nil, fmt.Errorf("nats: connect to %s: the server refused %s (wrong or unknown credentials): %w", c.URL, who, err)
		case errors.Is(err, nats.ErrSecureConnRequired):
			return nil, fmt.Errorf("nats: connect to %s: the server requires TLS (set nats.tls.enabled or use a tls:// URL): %w", c.URL, err)
		}
		var uae x509.UnknownAuthorityError
		var cie x509.CertificateInvalidError
		var hne x509.HostnameError
		if errors.As(err, &uae) || errors.As(err, &cie) || errors.As(err, &hne) {
			return nil, fmt.Errorf("nats: connect to %s: the server's TLS certificate is not trusted (check nats.tls.ca_file %q): %w", c.URL, c.TLS.CAFile, err)
		}
		return nil, fmt.Errorf("nats: connect to %s as %s: %w", c.URL, who, err)
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
