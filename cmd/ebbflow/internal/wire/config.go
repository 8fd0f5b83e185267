package wire

import (
	"io"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/ingest"
	"github.com/ebbflow/ebbflow/ingest/window"
	"github.com/ebbflow/ebbflow/internal/config"
	"github.com/ebbflow/ebbflow/internal/decisionsig"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/internal/kube"
	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/training/mixing"
	"github.com/ebbflow/ebbflow/training/scheduler"
	"github.com/ebbflow/ebbflow/ui"
)

// Config is the whole configuration file. Each component receives its own
// section plus the shared connection sections it needs. A new component
// adds its section here (and its default in Default).
type Config struct {
	Kafka      kafkax.Config    `yaml:"kafka"`
	NATS       natsbus.Config   `yaml:"nats"`
	History    history.Config   `yaml:"history"`
	Kubernetes kube.Config      `yaml:"kubernetes"`
	Telemetry  telemetry.Config `yaml:"telemetry"`
	Ingest     ingest.Config    `yaml:"ingest"`
	Window     window.Config    `yaml:"window"`
	Forecast   forecast.Config  `yaml:"forecast"`
	Autoscale  autoscale.Config `yaml:"autoscale"`
	Actuate    actuators.Config `yaml:"actuate"`
	Mixing     mixing.Config    `yaml:"mixing"`
	Servers    servers.Config   `yaml:"servers"`
	Training   scheduler.Config `yaml:"training"`
	Dev        DevConfig        `yaml:"dev"`
	UI         ui.Config        `yaml:"ui"`
	// Signing is how deciders sign decisions and actuators verify them.
	Signing decisionsig.Config `yaml:"signing"`
}

// Default returns the documented defaults of every section.
func Default() Config {
	return Config{
		Kafka:      kafkax.DefaultConfig(),
		NATS:       natsbus.DefaultConfig(),
		History:    history.DefaultConfig(),
		Kubernetes: kube.DefaultConfig(),
		Telemetry:  telemetry.DefaultConfig(),
		Ingest:     ingest.DefaultConfig(),
		Window:     window.DefaultConfig(),
		Forecast:   forecast.DefaultConfig(),
		Autoscale:  autoscale.DefaultConfig(),
		Actuate:    actuators.DefaultConfig(),
		Mixing:     mixing.DefaultConfig(),
		Servers:    servers.DefaultConfig(),
		Training:   scheduler.DefaultConfig(),
		Dev:        DefaultDevConfig(),
		UI:         ui.DefaultConfig(),
		Signing:    decisionsig.DefaultConfig(),
	}
}

// Validate checks every section and names the first bad field as
// section.field.
func (c Config) Validate() error { return config.Validate(c) }

// Options say where the configuration comes from (file, environment,
// --set overrides).
type Options = config.Options

// Load builds the configuration: defaults, then the file, then the
// environment, then the overrides, then validation.
func Load(o Options) (Config, error) {
	c := Default()
	err := config.Load(o, &c)
	return c, err
}

// Decode strictly decodes YAML onto c.
func Decode(r io.Reader, c *Config) error { return config.Decode(r, c) }

// Marshal renders c as YAML (used by `ebbflow config defaults`).
func Marshal(c Config) ([]byte, error) { return config.Marshal(c) }

// Set assigns value to the field at a dotted YAML path.
func Set(c *Config, path, value string) error { return config.Set(c, path, value) }
