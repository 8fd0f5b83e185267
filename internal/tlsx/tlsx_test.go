package tlsx

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	p, err := WritePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		f    Files
		want []string
	}{
		{"missing ca", Files{CAFile: missing}, []string{"x.tls.ca_file", missing}},
		{"junk ca", Files{CAFile: junk}, []string{"x.tls.ca_file", junk, "no PEM certificate"}},
		{"junk cert", Files{CertFile: junk, KeyFile: p.ClientKey}, []string{"x.tls.cert_file", junk}},
		{"junk key", Files{CertFile: p.ClientCert, KeyFile: junk}, []string{"x.tls.key_file", junk}},
		{"mismatch", Files{CertFile: p.ClientCert, KeyFile: p.ServerKey}, []string{"do not form a pair", p.ClientCert, p.ServerKey}},
		{"half pair", Files{CertFile: p.ClientCert}, []string{"x.tls.cert_file and x.tls.key_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.f.Client("x.tls")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := (Files{CAFile: p.CAFile}).Server("ui.tls"); err == nil || !strings.Contains(err.Error(), "ui.tls.cert_file") {
		t.Errorf("server without cert: %v", err)
	}
}

func TestMutualTLSHandshake(t *testing.T) {
	p, err := WritePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := WritePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stc, err := Files{CertFile: p.ServerCert, KeyFile: p.ServerKey, CAFile: p.CAFile}.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = stc
	srv.StartTLS()
	defer srv.Close()
	get := func(f Files) error {
		ctc, err := f.Client("cli")
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: ctc}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(Files{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}); err != nil {
		t.Fatalf("trusted client with certificate: %v", err)
	}
	if err := get(Files{CAFile: p.CAFile}); err == nil {
		t.Error("a client without a certificate was accepted by a server that requires one")
	}
	if err := get(Files{CAFile: other.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("a client trusting another CA: %v, want unknown authority", err)
	}
	if err := get(Files{CAFile: p.CAFile, CertFile: other.ClientCert, KeyFile: other.ClientKey}); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
}
