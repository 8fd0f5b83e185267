package wire

import (
	"crypto/ed25519"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// deciderKafka is the Kafka section a decider produces with: every record
// it sends to the decisions topic is signed (decisionsig), by the one
// interceptor installed here. Without a key it is the section as is, or an
// error when signing.required is on.
func (e *Env) deciderKafka(component string) (kafkax.Config, error) {
	kc := e.Cfg.Kafka
	s, err := e.Cfg.Signer(e.SigningKey)
	if err != nil {
		return kc, fmt.Errorf("%s: %w", component, err)
	}
	if s == nil {
		e.Log.Warn("decisions are not signed (signing.private_key_file is empty and signing.required is off)")
		return kc, nil
	}
	kc.Interceptors = append(append([]sarama.ProducerInterceptor(nil), kc.Interceptors...), s.Interceptor(kc.Topics().Name(schemas.TopicDecisions)))
	e.Log.Info("signing decisions", "key_id", s.KeyID())
	return kc, nil
}

// Signer is the decision signer of the signing section: key, when set
// (ebbflow dev's in-process key), else signing.private_key_file. nil when
// neither and signing.required is off.
func (c Config) Signer(key ed25519.PrivateKey) (*decisionsig.Signer, error) {
	if key == nil && c.Signing.PrivateKeyFile != "" {
		var err error
		if key, err = decisionsig.LoadPrivateKey(c.Signing.PrivateKeyFile); err != nil {
			return nil, fmt.Errorf("signing.private_key_file: %w", err)
		}
	}
	if key == nil {
		if c.Signing.Required {
			return nil, fmt.Errorf("signing.private_key_file: required to sign decisions while signing.required is on (create a key pair with `ebbflow keys generate`)")
		}
		return nil, nil
	}
	return decisionsig.NewSigner(key, nil), nil
}

// verifier is the actuator's signature check: the public key of
// e.SigningKey when set, else the keys in signing.public_keys. nil when
// neither and signing.required is off.
func (e *Env) verifier() (*decisionsig.Verifier, error) {
	s := e.Cfg.Signing
	var keys map[string]ed25519.PublicKey
	switch {
	case e.SigningKey != nil:
		pub := e.SigningKey.Public().(ed25519.PublicKey)
		keys = map[string]ed25519.PublicKey{decisionsig.KeyID(pub): pub}
	case s.PublicKeys != "":
		var err error
		if keys, err = decisionsig.LoadPublicKeys(s.PublicKeys); err != nil {
			return nil, fmt.Errorf("actuate: signing.public_keys: %w", err)
		}
	case s.Required:
		return nil, fmt.Errorf("actuate: signing.public_keys: required to verify decisions while signing.required is on (the deciders' public keys; `ebbflow keys generate`)")
	default:
		return nil, nil
	}
	v := decisionsig.NewVerifier(keys, s.Required, s.MaxAge, s.MaxSkew, nil)
	e.Log.Info("verifying decision signatures", "keys", v.KeyIDs(), "required", s.Required, "max_age", s.MaxAge)
	return v, nil
}
