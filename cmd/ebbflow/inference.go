package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
	"github.com/ebbflow/ebbflow/inference/servers"
)

func init() { subcommands = append(subcommands, newInferenceCmd) }

func newInferenceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inference",
		Short: "Model servers: validate and render serving specs, watch the model store, fetch model files",
		Long: `A model serving spec (YAML) describes one model version served by Triton or
OpenVINO Model Server on a GPU model or the CPU. 'validate' checks it, 'render'
prints the Kubernetes objects (ConfigMap, Deployment, Service) and the server's
model configuration (config.pbtxt or config.json). 'run' watches the model store
(servers.store_dir) and publishes inference decisions: launch, update, retire.
Configuration: section 'servers'. See docs/servers.md.`,
	}
	cmd.AddCommand(newInferenceValidateCmd(g), newInferenceRenderCmd(g), newInferenceRunCmd(g), newInferenceFetchCmd())
	return cmd
}

func newInferenceRunCmd(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Watch the model store and publish inference decisions (launch, update, retire)",
		Long: `run lists servers.store_dir on the history backend (history.backend: local or
hdfs) every servers.poll_interval. A new spec file is a launch decision, a spec
whose version grew an update, a removed file a retire; a broken spec, a changed
spec with the same version, a lower version or a second file for one model is
held back with a logged reason (ebbflow_servers_guards_total). Decisions go to
the decisions topic and, with nats.url set, to ebbflow.decisions.inference.>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.load()
			if err != nil {
				return err
			}
			c.Servers.DryRun = c.Servers.DryRun || dryRun
			return wire.Serve(cmd.Context(), c, cmd.ErrOrStderr(), wire.Servers)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "mark every decision dry_run (actuators report, do not act)")
	return cmd
}

func newInferenceFetchCmd() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Copy a model's files from the model store into a local directory (the server pod's init container)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return errors.New("--from and --to: both are required")
			}
			files, err := servers.Fetch(cmd.Context(), from, to)
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), f)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "model store directory: hdfs://namenode:port/dir or a local path")
	cmd.Flags().StringVar(&to, "to", "", "local directory, e.g. /models/<model>/<version>")
	return cmd
}

func loadSpec(path string) (servers.Spec, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return servers.Spec{}, nil, err
	}
	s, err := servers.ParseBytes(b)
	if err != nil {
		return s, b, fmt.Errorf("%s: %w", path, err)
	}
	return s, b, nil
}

func newInferenceValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate SPEC...",
		Short: "Check serving specs; every broken rule is printed with its field",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			failed := 0
			for _, path := range args {
				// The web UI's model form validates with the same call.
				var s servers.Spec
				doc, err := os.ReadFile(path)
				if err == nil {
					s, err = wire.ValidateServingSpec(cfg, doc)
				}
				if err != nil {
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: invalid:\n", path)
					for _, e := range unwrapJoined(err) {
						fmt.Fprintf(cmd.ErrOrStderr(), "  %v\n", e)
					}
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s v%d on %s, %s %s)\n", path, s.Name, s.Version, s.Server, s.Device, s.Precision.Mode)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d specs invalid", failed, len(args))
			}
			return nil
		},
	}
}

func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func newInferenceRenderCmd(g *globals) *cobra.Command {
	var replicas int32
	cmd := &cobra.Command{
		Use:   "render SPEC",
		Short: "Print the objects a spec renders to (YAML, as applied) and the server's model configuration",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			s, doc, err := loadSpec(args[0])
			if err != nil {
				return err
			}
			if replicas < 0 {
				return errors.New("--replicas: must not be negative")
			}
			if replicas == 0 {
				replicas = s.Scaling.MinReplicas
			}
			o, err := servers.Render(s, servers.Digest(doc), cfg.Servers, replicas)
			if err != nil {
				return err
			}
			y, err := o.YAML()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "# model repository (under %s):\n", servers.RepositoryPath)
			for _, f := range s.RepositoryLayout() {
				fmt.Fprintf(w, "#   %s\n", f)
			}
			fmt.Fprintf(w, "# %s:\n", o.ModelConfigName)
			for _, line := range splitLines(o.ModelConfig) {
				fmt.Fprintf(w, "#   %s\n", line)
			}
			fmt.Fprintf(w, "---\n%s", y)
			return nil
		},
	}
	cmd.Flags().Int32Var(&replicas, "replicas", 0, "replicas of a new Deployment (default: scaling.min_replicas)")
	return cmd
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
