//go:build integration

package natsbus

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/ebbflow/ebbflow/internal/tlsx"
	"github.com/ebbflow/ebbflow/schemas"
)

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the integration tests through `make test`, or `deploy/dev/services.sh up && source .dev/services.env`", name)
	}
	return v
}

// realConfig is the nats section for the real nats-server of deploy/dev/nats.sh.
func realConfig(t *testing.T) Config {
	t.Helper()
	c := DefaultConfig()
	c.URL = env(t, "EBBFLOW_TEST_NATS_URL")
	c.TLS.Enabled = true
	c.TLS.CAFile = env(t, "EBBFLOW_TEST_NATS_CA")
	c.User = env(t, "EBBFLOW_TEST_NATS_USER")
	c.Password = env(t, "EBBFLOW_TEST_NATS_PASSWORD")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func unique(prefix string) string { return fmt.Sprintf("%s.t%d", prefix, time.Now().UnixNano()) }

func TestRealServerPubSubWithUserOverTLS(t *testing.T) {
	c := realConfig(t)
	pwFile := t.TempDir() + "/pw"
	if err := os.WriteFile(pwFile, []byte(c.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Password, c.PasswordFile = "", pwFile // the password read from a file, as in a Secret
	nc, err := Connect(c, "auth-test-sub")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("connection is not TLS")
	}
	if st, err := nc.TLSConnectionState(); err != nil || !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
		t.Errorf("TLS state %+v, %v", st, err)
	}
	subject := unique("ebbflow.test.auth")
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := Connect(realConfig(t), "auth-test-pub")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(subject, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no message on %s: %v", subject, err)
	}
	if string(m.Data) != "hello" {
		t.Errorf("got %q", m.Data)
	}

	// JetStream (enabled for the account) captures a decision subject.
	nc2, js, err := ConnectJetStream(realConfig(t), "auth-test-js")
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureStreams(ctx, js, time.Hour); err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, unique(schemas.SubjectDecisionsPrefix+".scale.authtest")+".ns", []byte(`{}`))
	if err != nil {
		t.Fatalf("jetstream publish over TLS as %s: %v", c.User, err)
	}
	if ack.Stream != schemas.StreamDecisions {
		t.Errorf("captured by %q, want %q", ack.Stream, schemas.StreamDecisions)
	}
}

func TestRealServerOtherAccountIsolated(t *testing.T) {
	c := realConfig(t)
	other := c
	other.User = env(t, "EBBFLOW_TEST_NATS_OTHER_USER")
	other.Password = env(t, "EBBFLOW_TEST_NATS_OTHER_PASSWORD")
	onc, err := Connect(other, "auth-test-other")
	if err != nil {
		t.Fatal(err)
	}
	defer onc.Close()
	subject := unique("ebbflow.test.isolation")
	osub, err := onc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := Connect(c, "auth-test-own")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	own, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := onc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(subject, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	// The publisher's own account receives it (so the message was sent) ...
	if _, err := own.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("own account did not receive: %v", err)
	}
	// ... and the other account's subscriber on the same subject does not.
	if m, err := osub.NextMsg(2 * time.Second); err == nil {
		t.Fatalf("account OTHER received %q published in EBBFLOW", m.Data)
	}
}

func TestRealServerWrongPasswordRefused(t *testing.T) {
	c := realConfig(t)
	c.Password = "not-the-password"
	nc, err := Connect(c, "auth-test-wrong")
	if err == nil {
		nc.Close()
		t.Fatal("connected with a wrong password")
	}
	if nc != nil {
		t.Error("a connection came back with the error")
	}
	for _, want := range []string{"refused user " + c.User, "wrong or unknown credentials", "uthorization"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	t.Logf("wrong password: %v", err)

	// Without credentials at all: refused too (no anonymous access).
	c.User, c.Password = "", ""
	if nc, err := Connect(c, "auth-test-anon"); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	} else {
		t.Logf("no credentials: %v", err)
	}
}

func TestRealServerUntrustedCertificateRefused(t *testing.T) {
	other, err := tlsx.WritePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := realConfig(t)
	c.TLS.CAFile = other.CAFile
	nc, err := Connect(c, "auth-test-untrusted")
	if err == nil {
		nc.Close()
		t.Fatal("connected to a server whose certificate an untrusted CA signed")
	}
	if !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("error %q does not say the certificate is untrusted", err)
	}
	t.Logf("untrusted CA: %v", err)

	// A client configured without TLS (nats:// URL, no tls section) does
	// not get a cleartext session: the server requires TLS, nats.go
	// upgrades, and without the dev CA the server is not trusted.
	c = realConfig(t)
	c.TLS = TLSConfig{}
	c.URL = strings.Replace(c.URL, "tls://", "nats://", 1)
	if nc, err := Connect(c, "auth-test-plain"); err == nil {
		nc.Close()
		t.Fatal("connected without TLS settings")
	} else if !strings.Contains(err.Error(), "tls") {
		t.Errorf("plain connection error %q does not mention TLS", err)
	} else {
		t.Logf("no TLS settings: %v", err)
	}
}

// TestRealServerNKeyOverTLS: the user nkey the dev server lists
// (nkey_seed_file) connects over TLS into the EBBFLOW account and uses
// JetStream; an nkey the server does not list is refused.
func TestRealServerNKeyOverTLS(t *testing.T) {
	c := realConfig(t)
	c.User, c.Password = "", ""
	c.NKeySeedFile = env(t, "EBBFLOW_TEST_NATS_NKEY_SEED_FILE")
	nc, js, err := ConnectJetStream(c, "auth-test-nkey")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureStreams(ctx, js, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, unique(schemas.SubjectAlertsPrefix+".info.nkeytest"), []byte(`{}`)); err != nil {
		t.Fatalf("jetstream publish with the nkey: %v", err)
	}

	stranger, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := stranger.Seed()
	c.NKeySeedFile = filepath.Join(t.TempDir(), "stranger.nk")
	if err := os.WriteFile(c.NKeySeedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	if nc, err := Connect(c, "auth-test-stranger"); err == nil {
		nc.Close()
		t.Fatal("an unlisted nkey connected")
	} else if !strings.Contains(err.Error(), "refused nkey") {
		t.Errorf("unlisted nkey: error %q does not say the server refused it", err)
	} else {
		t.Logf("unlisted nkey: %v", err)
	}
}
