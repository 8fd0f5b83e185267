//go:build integration

package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/ebbflow/ebbflow/schemas"
)

// operatorServer is a nats-server (the binary of deploy/dev/nats.sh) run by
// one test in operator (decentralised JWT) mode: it trusts the operator's
// JWT and knows the accounts through a MEMORY resolver preloaded with their
// JWTs. The shared dev server uses config-file accounts, so this one is the
// test's own, on a free port, stopped when the test ends.
type operatorServer struct {
	url     string
	log     string        // the server's log file (debug on: it says why it refused a user)
	account nkeys.KeyPair // EBBFLOW, JetStream enabled; signs the users
}

func newKey(t *testing.T, create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return kp, pub
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startOperatorServer generates an operator, a system account and the
// account EBBFLOW (JetStream on, revoking the users in revoked), writes
// the server configuration and starts nats-server, failing the test with
// the server's log when it does not come up.
func startOperatorServer(t *testing.T, revoked ...string) *operatorServer {
	t.Helper()
	bin := env(t, "EBBFLOW_TEST_NATS_SERVER")
	dir := t.TempDir()
	op, opPub := newKey(t, nkeys.CreateOperator)
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "ebbflow-test-operator"
	_, sysPub := newKey(t, nkeys.CreateAccount)
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	acct, acctPub := newKey(t, nkeys.CreateAccount)
	ac := jwt.NewAccountClaims(acctPub)
	ac.Name = "EBBFLOW"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	for _, u := range revoked {
		ac.Revoke(u)
	}
	acctJWT, err := ac.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	opFile := filepath.Join(dir, "operator.jwt")
	if err := os.WriteFile(opFile, []byte(opJWT), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := fmt.Sprintf(`listen: "127.0.0.1:%d"
server_name: "ebbflow-creds-test"
operator: %q
system_account: %q
resolver: MEMORY
resolver_preload: {
  %s: %q
  %s: %q
}
jetstream: { store_dir: %q }
debug: true
`, port, opFile, sysPub, sysPub, sysJWT, acctPub, acctJWT, filepath.Join(dir, "js"))
	confFile := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "nats.log")
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confFile)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); lf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	logText := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("nats-server in operator mode exited (%v); log:\n%s", err, logText())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server in operator mode not listening on %s after 60s; log:\n%s", addr, logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &operatorServer{url: "nats://" + addr, log: logFile, account: acct}
}

// writeCreds issues a user JWT signed by signer for account accountPub
// (edit adjusts the claims) and writes it with the user's seed as a
// .creds file; it returns the file and the user's public key.
func writeCreds(t *testing.T, dir, name string, signer nkeys.KeyPair, edit func(*jwt.UserClaims)) (string, string) {
	t.Helper()
	user, userPub := newKey(t, nkeys.CreateUser)
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	if edit != nil {
		edit(uc)
	}
	tok, err := uc.Encode(signer)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".creds")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, userPub
}

func credsConfig(t *testing.T, url, file string) Config {
	t.Helper()
	c := DefaultConfig()
	c.URL = url
	c.CredsFile = file
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRealServerCredsJWT: a .creds file (user JWT + seed) issued by an
// account the operator-mode nats-server trusts connects through
// nats.creds_file, publishes and subscribes, and uses JetStream
// (EnsureStreams + a captured publish); users of an untrusted account,
// revoked or expired users are refused with an error naming the creds file.
func TestRealServerCredsJWT(t *testing.T) {
	keys := t.TempDir()
	// The revoked user's key must be known before the account JWT is
	// signed, so that key is made first and its JWT issued afterwards.
	revokedUser, revokedPub := newKey(t, nkeys.CreateUser)
	srv := startOperatorServer(t, revokedPub)

	good, _ := writeCreds(t, keys, "good", srv.account, nil)
	c := credsConfig(t, srv.url, good)
	sub, err := Connect(c, "creds-test-sub")
	if err != nil {
		t.Fatalf("connect with a trusted .creds file: %v", err)
	}
	defer sub.Close()
	subject := unique("ebbflow.test.creds")
	s, err := sub.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, js, err := ConnectJetStream(c, "creds-test-pub")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(subject, []byte("hello jwt")); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no message on %s: %v", subject, err)
	}
	if string(m.Data) != "hello jwt" {
		t.Errorf("got %q", m.Data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureStreams(ctx, js, time.Hour); err != nil {
		t.Fatalf("EnsureStreams in the JWT account: %v", err)
	}
	ack, err := js.Publish(ctx, unique(schemas.SubjectDecisionsPrefix+".scale.credstest")+".ns", []byte(`{}`))
	if err != nil {
		t.Fatalf("jetstream publish with .creds: %v", err)
	}
	if ack.Stream != schemas.StreamDecisions {
		t.Errorf("captured by %q, want %q", ack.Stream, schemas.StreamDecisions)
	}

	// The server answers every refusal with "Authorization Violation" (it
	// tells a client no more); its log says why.
	refused := func(what, file string) error {
		t.Helper()
		nc, err := Connect(credsConfig(t, srv.url, file), "creds-test-"+what)
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected", what)
		}
		for _, want := range []string{"refused credentials " + file, "wrong or unknown credentials"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", what, err, want)
			}
		}
		t.Logf("%s: %v", what, err)
		return err
	}
	// serverSaid waits for the server's log to give the reason of a refusal
	// (so each case is refused for its own reason, not another one).
	serverSaid := func(what, reason string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, _ := os.ReadFile(srv.log)
			if strings.Contains(strings.ToLower(string(b)), reason) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: the server log never says %q:\n%s", what, reason, b)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// A user signed by an account the server's operator did not sign
	// (unknown to its resolver).
	stranger, _ := newKey(t, nkeys.CreateAccount)
	untrusted, _ := writeCreds(t, keys, "untrusted", stranger, nil)
	refused("untrusted account", untrusted)
	serverSaid("untrusted account", "account missing")

	// A user the account revoked.
	tok, err := func() (string, error) {
		uc := jwt.NewUserClaims(revokedPub)
		uc.Name = "revoked"
		return uc.Encode(srv.account)
	}()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := revokedUser.Seed()
	b, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		t.Fatal(err)
	}
	revokedFile := filepath.Join(keys, "revoked.creds")
	if err := os.WriteFile(revokedFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	refused("revoked user", revokedFile)
	serverSaid("revoked user", "user authentication revoked")

	// A user whose JWT expired an hour ago.
	expired, _ := writeCreds(t, keys, "expired", srv.account, func(uc *jwt.UserClaims) {
		uc.IssuedAt = time.Now().Add(-2 * time.Hour).Unix()
		uc.Expires = time.Now().Add(-time.Hour).Unix()
	})
	refused("expired user", expired)
	serverSaid("expired user", "claim is expired")
}

// TestCredsFileErrorsNameSettingAndFile: a creds_file that does not exist,
// does not parse, holds no seed or holds a non-user JWT is refused before
// any connection, with an error naming nats.creds_file and the file.
func TestCredsFileErrorsNameSettingAndFile(t *testing.T) {
	dir := t.TempDir()
	acct, acctPub := newKey(t, nkeys.CreateAccount)
	good, _ := writeCreds(t, dir, "good", acct, nil)
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseDecoratedJWT(goodBytes)
	if err != nil {
		t.Fatal(err)
	}
	op, _ := newKey(t, nkeys.CreateOperator)
	acctJWT, err := jwt.NewAccountClaims(acctPub).Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		what, file, want string
	}{
		{"missing", filepath.Join(dir, "absent.creds"), "no such file"},
		{"garbage", write("garbage.creds", "this is not a creds file\n"), "not a valid user JWT"},
		{"no seed", write("noseed.creds", "-----BEGIN NATS USER JWT-----\n"+tok+"\n------END NATS USER JWT------\n"), "no user nkey seed"},
		{"account JWT", write("account.creds", "-----BEGIN NATS USER JWT-----\n"+acctJWT+"\n------END NATS USER JWT------\n"), "not a valid user JWT"},
	} {
		// No server listens there: the file is checked first.
		c := credsConfig(t, "nats://127.0.0.1:1", tc.file)
		nc, err := Connect(c, "creds-test-bad")
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected", tc.what)
		}
		for _, want := range []string{"nats.creds_file", tc.file, tc.want} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", tc.what, err, want)
			}
		}
		if tc.what == "missing" && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing: %v is not fs.ErrNotExist", err)
		}
		t.Logf("%s: %v", tc.what, err)
	}
}
