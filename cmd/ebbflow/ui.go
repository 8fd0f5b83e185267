package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/cmd/ebbflow/internal/wire"
)

func init() { subcommands = append(subcommands, newUICmd) }

func newUICmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ui",
		Short: "Web UI: services, forecasts, decisions, node pools, the training queue, actions; forms to submit jobs and register model servers",
		Long: `ui serves a web UI on ui.listen. It reads the windows, forecasts, decisions and
actions topics (read_committed, the last ui.backfill records of each partition,
then live) and, with nats.url set, the alerts stream into a bounded in-memory
store, and the Kubernetes API for node groups, pools and the Kueue training
queue. Pages update live over server-sent events; charts are SVG rendered by
the server; nothing is loaded from outside the binary.

Read-only pages need no login unless ui.require_token_for_read is set. The
forms (submit a training job: the code of 'ebbflow training submit'; register a
model server: 'ebbflow inference validate', then the spec is written to the
model store 'ebbflow inference run' watches) need the bearer token ui.token
(or ui.token_file), in an Authorization header or the form's token field, and
a per-form CSRF token; cross-origin posts are refused. ui.tls.cert_file and
key_file serve HTTPS. Configuration: section 'ui'. Manual: docs/ui.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return wire.Serve(cmd.Context(), cfg, cmd.ErrOrStderr(), wire.UI)
		},
	}
}
