// Package tlsx builds the *tls.Config of every TLS endpoint and client in
// ebbflow (Kafka, NATS, the remote_write receiver, the UI) from one
// configuration shape: PEM files for a CA, a certificate and its key. Every
// error names the setting and the file that is wrong, so an operator does not
// have to guess which of three paths a "tls: failed to find any PEM data"
// came from.
package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// Files is the TLS block of a configuration section. Paths are PEM files.
//
// As a client: CAFile verifies the server (empty: the system roots);
// CertFile/KeyFile are an optional client certificate (mutual TLS).
// As a server: CertFile/KeyFile are the server certificate (required);
// CAFile, when set, requires and verifies client certificates.
type Files struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the host name a client verifies (empty: the
	// host of the address dialled).
	ServerName string `yaml:"server_name,omitempty"`
	// InsecureSkipVerify turns off server verification (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
	// Settings, when set, are the full names of the three file settings
	// in error messages, for sections whose keys are not
	// <prefix>.ca_file/cert_file/key_file.
	Settings Settings `yaml:"-"`
}

// Settings names the configuration keys of Files' paths.
type Settings struct{ CA, Cert, Key string }

// names returns the setting names for errors.
func (f Files) names(prefix string) Settings {
	n := f.Settings
	if n.CA == "" {
		n.CA = prefix + ".ca_file"
	}
	if n.Cert == "" {
		n.Cert = prefix + ".cert_file"
	}
	if n.Key == "" {
		n.Key = prefix + ".key_file"
	}
	return n
}

// Validate checks the combination of fields, without reading the files.
// prefix names the section in messages, e.g. "kafka.tls".
func (f Files) Validate(prefix string) error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		n := f.names(prefix)
		return fmt.Errorf("%s and %s: set both or neither", n.Cert, n.Key)
	}
	return nil
}

// Client returns a client configuration: TLS 1.2 or later, the CA pool
// from CAFile (system roots when empty) and the optional client
// certificate. prefix names the section in errors ("kafka.tls").
func (f Files) Client(prefix string) (*tls.Config, error) {
	if err := f.Validate(prefix); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.ServerName,
		InsecureSkipVerify: f.InsecureSkipVerify, //nolint:gosec // opt-in by config, documented as tests only
	}
	n := f.names(prefix)
	if f.CAFile != "" {
		pool, err := LoadCAPool(n.CA, f.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if f.CertFile != "" {
		cert, err := loadKeyPair(n, f.CertFile, f.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Server returns a server configuration: TLS 1.2 or later with the
// certificate CertFile/KeyFile (required); when CAFile is set, clients
// must present a certificate signed by it.
func (f Files) Server(prefix string) (*tls.Config, error) {
	n := f.names(prefix)
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, fmt.Errorf("%s and %s: both are required to serve TLS", n.Cert, n.Key)
	}
	cert, err := loadKeyPair(n, f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.CAFile != "" {
		pool, err := LoadCAPool(n.CA, f.CAFile)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// LoadCAPool reads PEM certificates from path; setting names the
// configuration key in errors ("kafka.tls.ca_file").
func LoadCAPool(setting, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", setting, path)
	}
	return pool, nil
}

// LoadKeyPair reads a PEM certificate and its key; errors name the file at
// fault (prefix.cert_file or prefix.key_file).
func LoadKeyPair(prefix, certFile, keyFile string) (tls.Certificate, error) {
	return loadKeyPair(Files{}.names(prefix), certFile, keyFile)
}

func loadKeyPair(n Settings, certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", n.Cert, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", n.Key, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		var which string
		switch {
		case !hasPEMBlock(certPEM, "CERTIFICATE"):
			which = fmt.Sprintf("%s: %s holds no PEM certificate", n.Cert, certFile)
		case !hasPEMKey(keyPEM):
			which = fmt.Sprintf("%s: %s holds no PEM private key", n.Key, keyFile)
		default:
			which = fmt.Sprintf("%s and %s: certificate %s and key %s do not form a pair", n.Cert, n.Key, certFile, keyFile)
		}
		return tls.Certificate{}, fmt.Errorf("%s: %w", which, err)
	}
	return cert, nil
}

func hasPEMBlock(b []byte, typ string) bool {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return false
		}
		if blk.Type == typ {
			return true
		}
	}
}

func hasPEMKey(b []byte) bool {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return false
		}
		if strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			return true
		}
	}
}
