// Package decisionsig signs decisions where they are produced and verifies
// them where they are carried out, so that write access to the decisions
// topic is not enough to scale the cluster.
//
// A decider signs each record with its ed25519 private key: the signature
// covers the exact body bytes, the record's CloudEvents type and id (the
// decision id) and the signing time, and travels in three record headers
// (HeaderKeyID, HeaderSignedAt, HeaderSignature). An actuator verifies with
// the public keys it trusts, found by key id, and refuses a record that is
// unsigned, signed by an unknown key, whose signature does not match, whose
// signing time is outside its window, or whose decision id it has already
// seen at another offset (a replay). The key id is derived from the public
// key (KeyID), so there is nothing to keep in step between the two sides.
//
// Keys are PEM files: a PKCS #8 "PRIVATE KEY" for a decider, PKIX "PUBLIC
// KEY"s for an actuator (`ebbflow keys generate`, or `openssl genpkey
// -algorithm ed25519`), typically Kubernetes Secrets mounted as files.
package decisionsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record headers carrying a signature.
const (
	// HeaderKeyID names the key that signed (KeyID of its public key).
	HeaderKeyID = "ebbflow_sig_key"
	// HeaderSignedAt is the signing time, Unix milliseconds.
	HeaderSignedAt = "ebbflow_sig_at"
	// HeaderSignature is the ed25519 signature, base64 (standard, padded).
	HeaderSignature = "ebbflow_sig"
)

// domain separates these signatures from any other use of the same key.
const domain = "ebbflow.decision.v1"

// Reason is why a record was refused; it is the dead letter's reason and
// the value of the rejected-decisions counter's reason label.
type Reason string

// Reasons a record is refused.
const (
	ReasonUnsigned      Reason = "unsigned"
	ReasonMalformed     Reason = "malformed_signature"
	ReasonUnknownKey    Reason = "unknown_key"
	ReasonBadSignature  Reason = "bad_signature"
	ReasonOutsideWindow Reason = "outside_window"
	ReasonReplayed      Reason = "replayed"
)

// Reasons lists every Reason (metrics start each label at zero).
var Reasons = []Reason{ReasonUnsigned, ReasonMalformed, ReasonUnknownKey, ReasonBadSignature, ReasonOutsideWindow, ReasonReplayed}

// Error is a refused record: the reason and what was wrong.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return "decision signature: " + string(e.Reason) + ": " + e.Detail }

func refuse(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Config is the `signing` section of the configuration file.
type Config struct {
	// Required makes actuators refuse unsigned decisions and deciders
	// refuse to start without a private key. Off, unsigned decisions are
	// accepted, but a signed one is still verified.
	Required bool `yaml:"required"`
	// PrivateKeyFile is the deciders' PEM PKCS #8 ed25519 private key
	// (a mounted Secret; `ebbflow keys generate`).
	PrivateKeyFile string `yaml:"private_key_file"`
	// PublicKeys is the actuators' trusted keys: a PEM file holding one or
	// more PKIX ed25519 public keys, or a directory of such files (a
	// mounted Secret or ConfigMap; hidden entries are skipped).
	PublicKeys string `yaml:"public_keys"`
	// MaxAge is how old a signature may be when the actuator reads it; an
	// older one is refused (outside_window). It bounds how long a copied
	// record could be replayed after an actuator restart.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxSkew is how far in the future a signing time may be (clock
	// skew between decider and actuator).
	MaxSkew time.Duration `yaml:"max_skew"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{Required: true, MaxAge: 15 * time.Minute, MaxSkew: time.Minute}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.MaxAge <= 0 {
		return errors.New("max_age: must be positive")
	}
	if c.MaxSkew < 0 {
		return errors.New("max_skew: must not be negative")
	}
	return nil
}

// KeyID is the id of a public key: the first 16 hex digits of the SHA-256
// of its 32 bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKey returns a new key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// MarshalPrivateKey encodes a private key as PEM PKCS #8.
func MarshalPrivateKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey encodes a public key as PEM PKIX.
func MarshalPublicKey(k ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// LoadPrivateKey reads a PEM PKCS #8 ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: no PEM \"PRIVATE KEY\" block (create one with `ebbflow keys generate`)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: a %T, not an ed25519 key", path, k)
	}
	return ek, nil
}

// LoadPublicKeys reads the trusted public keys from a PEM file (one or more
// "PUBLIC KEY" blocks) or from every regular, non-hidden file of a
// directory, by key id.
func LoadPublicKeys(path string) (map[string]ed25519.PublicKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("public keys: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("public keys: %w", err)
		}
		files = files[:0]
		for _, e := range ents {
			// A mounted Secret holds ..data and ..<timestamp> links beside the keys.
			if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
				continue
			}
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	keys := map[string]ed25519.PublicKey{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("public keys: %w", err)
		}
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			if blk.Type != "PUBLIC KEY" {
				continue
			}
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("public keys: %s: %w", f, err)
			}
			ek, ok := k.(ed25519.PublicKey)
			if !ok {
				return nil, fmt.Errorf("public keys: %s: a %T, not an ed25519 key", f, k)
			}
			keys[KeyID(ek)] = ek
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("public keys: no PEM \"PUBLIC KEY\" in %s", path)
	}
	return keys, nil
}

// message is what is signed: the domain, type, id, signing time and body,
// each length-prefixed so no two records share it.
func message(ceType, id string, atMs int64, body []byte) []byte {
	at := strconv.FormatInt(atMs, 10)
	out := make([]byte, 0, len(domain)+len(ceType)+len(id)+len(at)+len(body)+40)
	for _, part := range [][]byte{[]byte(domain), []byte(ceType), []byte(id), []byte(at), body} {
		out = strconv.AppendInt(out, int64(len(part)), 10)
		out = append(out, ':')
		out = append(out, part...)
	}
	return out
}

// Signature is the three header values of a signed record.
type Signature struct {
	KeyID    string
	SignedAt string
	Value    string
}

// Signer signs decisions with one private key. It is safe for concurrent use.
type Signer struct {
	id  string
	key ed25519.PrivateKey
	now func() time.Time
}

// NewSigner signs with key; now nil is the wall clock (signing times are
// wall-clock time, also under `ebbflow dev --speed`).
func NewSigner(key ed25519.PrivateKey, now func() time.Time) *Signer {
	if now == nil {
		now = time.Now
	}
	return &Signer{id: KeyID(key.Public().(ed25519.PublicKey)), key: key, now: now}
}

// KeyID is the id of the signer's key.
func (s *Signer) KeyID() string { return s.id }

// Sign signs a record of CloudEvents type ceType and id (ce_type, ce_id)
// with this body.
func (s *Signer) Sign(ceType, id string, body []byte) Signature {
	at := s.now().UnixMilli()
	sig := ed25519.Sign(s.key, message(ceType, id, at, body))
	return Signature{KeyID: s.id, SignedAt: strconv.FormatInt(at, 10), Value: base64.StdEncoding.EncodeToString(sig)}
}

// Record is what a Verifier reads of one consumed record.
type Record struct {
	// Type and ID are the ce_type and ce_id headers.
	Type, ID string
	Body     []byte
	// Sig holds the signature headers ("" when absent).
	Sig Signature
	// Where the record was read: a redelivery of the same record (same
	// partition and offset) is not a replay.
	Partition int32
	Offset    int64
}

// Verifier checks records against the trusted public keys. It remembers the
// decision ids it has accepted within the window to refuse replays. It is
// safe for concurrent use.
type Verifier struct {
	keys     map[string]ed25519.PublicKey
	required bool
	maxAge   time.Duration
	maxSkew  time.Duration
	now      func() time.Time

	mu         sync.Mutex
	seen       map[string]seen
	lastForget int64
}

type seen struct {
	partition int32
	offset    int64
	atMs      int64
}

// NewVerifier trusts keys (by KeyID); required refuses unsigned records;
// a signing time older than maxAge or more than maxSkew ahead of now (nil:
// the wall clock) is refused.
func NewVerifier(keys map[string]ed25519.PublicKey, required bool, maxAge, maxSkew time.Duration, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: keys, required: required, maxAge: maxAge, maxSkew: maxSkew, now: now, seen: map[string]seen{}}
}

// KeyIDs lists the trusted key ids, sorted.
func (v *Verifier) KeyIDs() []string {
	out := make([]string, 0, len(v.keys))
	for id := range v.keys {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Verify returns nil for a record to act on, or an *Error saying why not.
// A record it accepts is remembered (by ce_id) until its signing time
// leaves the window.
func (v *Verifier) Verify(r Record) error {
	if r.Sig == (Signature{}) {
		if v.required {
			return refuse(ReasonUnsigned, "record %s (%s) carries no %s header; decisions must be signed (signing.required)", r.ID, r.Type, HeaderSignature)
		}
		return nil
	}
	if r.Sig.KeyID == "" || r.Sig.SignedAt == "" || r.Sig.Value == "" {
		return refuse(ReasonMalformed, "record %s needs all of %s, %s and %s", r.ID, HeaderKeyID, HeaderSignedAt, HeaderSignature)
	}
	at, err := strconv.ParseInt(r.Sig.SignedAt, 10, 64)
	if err != nil {
		return refuse(ReasonMalformed, "%s %q is not Unix milliseconds", HeaderSignedAt, r.Sig.SignedAt)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Sig.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return refuse(ReasonMalformed, "%s is not a base64 ed25519 signature", HeaderSignature)
	}
	key, ok := v.keys[r.Sig.KeyID]
	if !ok {
		return refuse(ReasonUnknownKey, "key %q is not trusted (trusted: %s)", r.Sig.KeyID, strings.Join(v.KeyIDs(), ", "))
	}
	if !ed25519.Verify(key, message(r.Type, r.ID, at, r.Body), sig) {
		return refuse(ReasonBadSignature, "signature of record %s by key %s does not match its type, id, time and body", r.ID, r.Sig.KeyID)
	}
	now := v.now()
	nowMs := now.UnixMilli()
	switch {
	case at < nowMs-v.maxAge.Milliseconds():
		return refuse(ReasonOutsideWindow, "signed at %s, %s ago; older than max_age %s", time.UnixMilli(at).UTC().Format(time.RFC3339), time.Duration(nowMs-at)*time.Millisecond, v.maxAge)
	case at > nowMs+v.maxSkew.Milliseconds():
		return refuse(ReasonOutsideWindow, "signed at %s, %s in the future; beyond max_skew %s", time.UnixMilli(at).UTC().Format(time.RFC3339), time.Duration(at-nowMs)*time.Millisecond, v.maxSkew)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.forget(nowMs)
	if s, ok := v.seen[r.ID]; ok && (s.partition != r.Partition || s.offset != r.Offset) {
		return refuse(ReasonReplayed, "decision %s was already read at partition %d offset %d; this copy is at partition %d offset %d", r.ID, s.partition, s.offset, r.Partition, r.Offset)
	}
	v.seen[r.ID] = seen{partition: r.Partition, offset: r.Offset, atMs: at}
	return nil
}

// forget drops ids whose signing time has left the window: a copy of them
// is refused as outside_window anyway. v.mu is held.
func (v *Verifier) forget(nowMs int64) {
	if nowMs-v.lastForget < v.maxAge.Milliseconds()/4 {
		return
	}
	v.lastForget = nowMs
	cut := nowMs - v.maxAge.Milliseconds()
	for id, s := range v.seen {
		if s.atMs < cut {
			delete(v.seen, id)
		}
	}
}
