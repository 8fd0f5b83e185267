package kafkax

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

func TestSASLSettings(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.SASL = SASLConfig{Mechanism: sarama.SASLTypeSCRAMSHA512, Username: "u", PasswordFile: pwFile}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	sc, err := c.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Net.SASL.Enable || sc.Net.SASL.Mechanism != sarama.SASLTypeSCRAMSHA512 || sc.Net.SASL.Password != "s3cret" {
		t.Fatalf("sasl = %+v", sc.Net.SASL)
	}
	if sc.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Fatal("no SCRAM client generator: sarama would refuse the configuration")
	}
	if err := sc.Validate(); err != nil {
		t.Fatalf("sarama rejects the configuration: %v", err)
	}
	// The SCRAM client computes a client-first message for the user.
	cl := sc.Net.SASL.SCRAMClientGeneratorFunc()
	if err := cl.Begin("u", "s3cret", ""); err != nil {
		t.Fatal(err)
	}
	first, err := cl.Step("")
	if err != nil || !strings.HasPrefix(first, "n,,n=u,r=") {
		t.Fatalf("client-first = %q, %v", first, err)
	}

	for _, tc := range []struct {
		s    SASLConfig
		want string
	}{
		{SASLConfig{Mechanism: "GSSAPI", Username: "u"}, `"GSSAPI" is not supported`},
		{SASLConfig{Mechanism: sarama.SASLTypeSCRAMSHA256}, "sasl.username: required with mechanism SCRAM-SHA-256"},
		{SASLConfig{Mechanism: sarama.SASLTypePlaintext, Username: "u", Password: "a", PasswordFile: pwFile}, "set one, not both"},
	} {
		c := DefaultConfig()
		c.SASL = tc.s
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
	c.SASL.PasswordFile = filepath.Join(dir, "missing")
	if _, err := c.Sarama(); err == nil || !strings.Contains(err.Error(), "kafka.sasl.password_file") {
		t.Errorf("missing password file: %v", err)
	}
}
