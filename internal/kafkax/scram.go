package kafkax

import (
	"fmt"

	"github.com/xdg-go/scram"
)

// scramClient adapts xdg-go/scram's conversation to sarama.SCRAMClient
// (sarama runs the SASL exchange; this computes the SCRAM messages).
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("kafka: scram client for %q: %w", user, err)
	}
	c.conv = cl.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) {
	return c.conv.Step(challenge)
}

func (c *scramClient) Done() bool { return c.conv.Done() }

var (
	scramSHA256 = scram.SHA256
	scramSHA512 = scram.SHA512
)
