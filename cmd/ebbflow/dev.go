package main

import (
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/dev"
)

func init() { subcommands = append(subcommands, newDevCmd) }

func newDevCmd(g *globals) *cobra.Command {
	var opts dev.Options
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole pipeline in one process on embedded parts against a simulated cluster",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			_, err = dev.Run(cmd.Context(), cfg, opts, cmd.OutOrStdout())
			return err
		},
	}
	return cmd
}
