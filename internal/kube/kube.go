// Package kube builds Kubernetes clients from the `kubernetes` section of
// the configuration: in-cluster, from a kubeconfig, or from a server URL
// and bearer token.
package kube

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is the `kubernetes` section of the configuration file.
type Config struct {
	// Cluster is this cluster's name in entity keys and decision targets.
	Cluster string `yaml:"cluster"`
	// InCluster uses the pod's service account.
	InCluster bool `yaml:"in_cluster"`
	// Kubeconfig is a kubeconfig path (KUBECONFIG rules when empty).
	Kubeconfig string `yaml:"kubeconfig"`
	// Server and TokenFile connect without a kubeconfig (CAFile optional).
	Server    string  `yaml:"server"`
	TokenFile string  `yaml:"token_file"`
	CAFile    string  `yaml:"ca_file"`
	QPS       float32 `yaml:"qps"`
	Burst     int     `yaml:"burst"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{Cluster: "default", QPS: 20, Burst: 40}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Cluster == "" {
		return errors.New("cluster: must not be empty (it names the cluster in entity keys)")
	}
	if c.Server != "" && c.TokenFile == "" {
		return errors.New("token_file: required with server")
	}
	if c.QPS <= 0 || c.Burst <= 0 {
		return errors.New("qps and burst: must be positive")
	}
	return nil
}

// RESTConfig returns the client configuration.
func (c Config) RESTConfig() (*rest.Config, error) {
	var rc *rest.Config
	var err error
	switch {
	case c.InCluster:
		rc, err = rest.InClusterConfig()
	case c.Server != "":
		tok, rerr := os.ReadFile(c.TokenFile)
		if rerr != nil {
			return nil, fmt.Errorf("kubernetes.token_file: %w", rerr)
		}
		rc = &rest.Config{Host: c.Server, BearerToken: string(tok)}
		if c.CAFile != "" {
			rc.TLSClientConfig.CAFile = c.CAFile
		} else {
			rc.TLSClientConfig.Insecure = true
		}
	default:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if c.Kubeconfig != "" {
			rules.ExplicitPath = c.Kubeconfig
		}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client config: %w", err)
	}
	rc.QPS, rc.Burst = c.QPS, c.Burst
	rc.UserAgent = "ebbflow"
	return rc, nil
}

// Clientset returns a typed clientset.
func (c Config) Clientset() (kubernetes.Interface, error) {
	rc, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: clientset for %s: %w", rc.Host, err)
	}
	return cs, nil
}
