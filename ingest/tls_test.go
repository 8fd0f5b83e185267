package ingest

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/internal/tlsx"
)

// TestReceiverTLSFileErrors: a bad certificate, key or client CA file is
// refused when the receiver is built, naming the setting and the file.
func TestReceiverTLSFileErrors(t *testing.T) {
	dir := t.TempDir()
	pki, err := tlsx.WritePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name           string
		cert, key, cas string
		want           string
	}{
		{"missing cert", filepath.Join(dir, "nope.crt"), pki.ServerKey, "", "ingest.remote_write.tls_cert_file"},
		{"junk key", pki.ServerCert, junk, "", "ingest.remote_write.tls_key_file: " + junk},
		{"junk client ca", pki.ServerCert, pki.ServerKey, junk, "ingest.remote_write.tls_client_ca_file: " + junk + " holds no PEM certificate"},
	} {
		cfg := DefaultConfig().RemoteWrite
		cfg.Listen = "127.0.0.1:0"
		cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile = tc.cert, tc.key, tc.cas
		srv, ln, err := newReceiverServer(cfg, nil, nil, NewMetrics(nil), log, nil)
		if err == nil {
			ln.Close()
			_ = srv
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q lacks %q", tc.name, err, tc.want)
		}
	}
	c := DefaultConfig()
	c.RemoteWrite.TLSClientCAFile = pki.CAFile
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "tls_client_ca_file") {
		t.Errorf("client CA without HTTPS: %v", err)
	}
}
