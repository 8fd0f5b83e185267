package wire

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbflow/ebbflow/internal/telemetry"
)

// TestHandlersActAsTheirIdentities: the inference and nodes handlers ask
// for clients acting as servers.impersonate and mixing.actuator.impersonate
// (the defaults: their own service accounts), and a failure to build the
// node identity's client stops the actuator, naming handler and identity.
func TestHandlersActAsTheirIdentities(t *testing.T) {
	cfg := Default()
	cfg.Mixing.Actuator.Enabled = true
	errNoClient := errors.New("no client for this identity")
	var asked []string
	e := &Env{Cfg: cfg, Log: telemetry.NewLogger(cfg.Telemetry, io.Discard), Reg: telemetry.NewRegistry(),
		KubeAs: func(user string) (kubernetes.Interface, error) {
			asked = append(asked, user)
			if user == cfg.Mixing.Actuator.Impersonate {
				return nil, errNoClient
			}
			return fake.NewSimpleClientset(), nil
		}}
	_, _, err := Handlers(context.Background(), e, fake.NewSimpleClientset(), nil)
	if !errors.Is(err, errNoClient) {
		t.Fatalf("err %v, want the node identity's client error", err)
	}
	for _, w := range []string{"nodes handler", "system:serviceaccount:ebbflow:ebbflow-node-actuator"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	want := []string{"system:serviceaccount:ebbflow:ebbflow-inference", "system:serviceaccount:ebbflow:ebbflow-node-actuator"}
	if !reflect.DeepEqual(asked, want) {
		t.Fatalf("identities asked for %v, want %v", asked, want)
	}
}

// TestActAsOwnIdentity: "" (ebbflow dev) or no way to impersonate keeps
// the actuator's own client, without asking for another.
func TestActAsOwnIdentity(t *testing.T) {
	own := fake.NewSimpleClientset()
	called := false
	e := &Env{KubeAs: func(string) (kubernetes.Interface, error) { called = true; return fake.NewSimpleClientset(), nil }}
	if got, err := actAs(e, own, "nodes", ""); err != nil || got != kubernetes.Interface(own) || called {
		t.Fatalf("empty user: client %p err %v KubeAs called %v; want the own client", got, err, called)
	}
	if got, err := actAs(&Env{}, own, "nodes", "system:serviceaccount:ebbflow:ebbflow-node-actuator"); err != nil || got != kubernetes.Interface(own) {
		t.Fatalf("no KubeAs: client %p err %v; want the own client", got, err)
	}
	other, err := actAs(e, own, "nodes", "system:serviceaccount:ebbflow:ebbflow-node-actuator")
	if err != nil || !called || other == kubernetes.Interface(own) {
		t.Fatalf("user set: err %v KubeAs called %v, own client returned %v", err, called, other == kubernetes.Interface(own))
	}
}
