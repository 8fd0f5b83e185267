package ui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ebbflow-ui-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestRunServesTLSFromKafka runs the UI as `ebbflow ui` does, over HTTPS,
// fed by its sarama consumer from a Kafka-protocol broker (kfake): events
// produced to the topics after start appear on the service page.
func TestRunServesTLSFromKafka(t *testing.T) {
	kc := kafkax.DefaultConfig()
	k, err := kafkax.StartEmbedded(0, 2, kc.Topics().All()...)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	kc.Brokers = k.Addrs()
	runFromKafka(t, kc)
}

// runFromKafka serves the UI over HTTPS from kc and checks that a window
// and a decision produced after start reach the service page.
func runFromKafka(t *testing.T, kc kafkax.Config) {
	t.Helper()
	topics := kc.Topics()
	cfg := DefaultConfig()
	certFile, keyFile, pool := selfSigned(t)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- Run(ctx, cfg, Deps{Kafka: kc, Listener: ln, Ready: func(u string) { ready <- u }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	base := <-ready
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("URL %s is not https", base)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}

	// Produce a window and a decision after the UI started.
	sc, err := kc.IdempotentProducer()
	if err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewSyncProducer(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := window(entity, schemas.SignalQPS, 0, 123)
	d := schemas.ScaleDecision{ID: "dec-kafka", Kind: schemas.DecisionScale, Seq: 1,
		Target: schemas.Target{Cluster: "dev", Namespace: "inference", Kind: "Deployment", Name: "chat-llm"}, Entity: entity,
		AtMs: w.EndMs, ExpiresMs: w.EndMs + minute, From: 1, To: 2,
		Reason: schemas.Reason{Summary: "from kafka", Formula: "f", Demands: []schemas.SignalDemand{}}, DecidedBy: "autoscale"}
	for _, m := range []struct {
		base string
		ev   schemas.Event
	}{{schemas.TopicMetricsWindows, w}, {schemas.TopicDecisions, d}} {
		msg, err := kafkax.NewMessage(topics.Name(m.base), "/test", m.ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.SendMessage(msg); err != nil {
			t.Fatal(err)
		}
	}
	page := ""
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := client.Get(base + "service?entity=" + url.QueryEscape(entity))
		if err != nil {
			t.Fatalf("https GET: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page = string(b)
		if strings.Contains(page, `id="d-dec-kafka"`) && strings.Contains(page, `data-series="actual qps"`) {
			break
		}
	}
	if !strings.Contains(page, `id="d-dec-kafka"`) || !strings.Contains(page, "from kafka") {
		t.Fatalf("the decision produced to Kafka is not on the page:\n%.2000s", page)
	}
	// Plain HTTP to the TLS port is not served.
	if resp, err := http.Get("http://" + strings.TrimPrefix(strings.TrimSuffix(base, "/"), "https://") + "/"); err == nil && resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		t.Error("plain HTTP answered 200 on the TLS listener")
	}
}
