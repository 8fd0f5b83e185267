package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newMixingRunCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "run",
		Short:  "The node-mixing decider loop (not built yet)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("mixing run: the decider loop is not built yet; see docs/mixing.md")
		},
	}
}
