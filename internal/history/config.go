// Package history stores and reads ebbflow's metric history: Parquet
// files of windows, Hive-partitioned by window size, day and hour, on HDFS
// or a local directory behind one small filesystem interface. The window
// processors write it, `ebbflow replay` and the forecast trainer read it,
// and analysts open it with pyarrow or DuckDB.
package history

import (
	"errors"
	"fmt"
)

// Backends of the history store.
const (
	BackendLocal = "local"
	BackendHDFS  = "hdfs"
)

// Config is the `history` section of the configuration file.
type Config struct {
	// Backend is "local" (a directory) or "hdfs".
	Backend string `yaml:"backend"`
	// Root is the directory (local path or HDFS path) that holds windows/.
	Root string `yaml:"root"`
	// NameNodes are HDFS namenode host:port addresses (backend hdfs).
	NameNodes []string `yaml:"namenodes"`
	// User is the HDFS user (HADOOP_USER_NAME when empty).
	User string `yaml:"user"`
}

// DefaultConfig returns the documented defaults (`ebbflow config defaults`).
func DefaultConfig() Config {
	return Config{Backend: BackendLocal, Root: "./data/history"}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch c.Backend {
	case BackendLocal:
	case BackendHDFS:
		if len(c.NameNodes) == 0 {
			return errors.New("namenodes: at least one namenode address is required with backend hdfs")
		}
	default:
		return fmt.Errorf("backend: %q is not local or hdfs", c.Backend)
	}
	if c.Root == "" {
		return errors.New("root: must not be empty")
	}
	return nil
}
