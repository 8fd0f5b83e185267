package natsbus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

func TestValidateAuth(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{User: "u", CredsFile: "x.creds"}, "set at most one"},
		{Config{User: "u", Password: "p", PasswordFile: "f"}, "set one, not both"},
		{Config{Password: "p"}, "password: needs user"},
		{Config{TLS: TLSConfig{CertFile: "c"}}, "tls.cert_file and tls.key_file"},
	} {
		if err := tc.c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	if err := (Config{User: "u", PasswordFile: "f", TLS: TLSConfig{Enabled: true, CAFile: "ca"}}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestNKeyAuth: a user nkey seed file authenticates against a server that
// lists the public key (an in-process server: the dev nats-server has
// password users only); another seed is refused with a clear error.
func TestNKeyAuth(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "user.nk")
	strangerFile := filepath.Join(dir, "stranger.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strangerFile, strangerSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := Connect(Config{URL: srv.ClientURL(), NKeySeedFile: seedFile}, "nkey-test")
	if err != nil {
		t.Fatalf("listed nkey: %v", err)
	}
	nc.Close()
	_, err = Connect(Config{URL: srv.ClientURL(), NKeySeedFile: strangerFile}, "nkey-test")
	if err == nil || !strings.Contains(err.Error(), "refused nkey "+strangerFile) {
		t.Errorf("unlisted nkey: %v", err)
	}
	_, err = Connect(Config{URL: srv.ClientURL(), NKeySeedFile: filepath.Join(dir, "missing.nk")}, "nkey-test")
	if err == nil || !strings.Contains(err.Error(), "nats.nkey_seed_file") {
		t.Errorf("missing seed file: %v", err)
	}
}
