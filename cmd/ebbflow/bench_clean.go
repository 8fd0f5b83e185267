package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/kafkax"
)

// newBenchCleanCmd is `ebbflow bench clean`: deletes the topics a load or
// comparison run created under its own prefix (make bench and
// deploy/dev/scale-run.sh call it when they end), so that runs do not pile
// partitions and data up on a long-lived broker.
func newBenchCleanCmd() *cobra.Command {
	var brokers []string
	cmd := &cobra.Command{
		Use:     "clean PREFIX...",
		Short:   "Delete every topic named PREFIX.* (a load run's own topics)",
		Example: `  ebbflow bench clean --brokers 127.0.0.1:19092 benchcmp1796694630`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, p := range args {
				kc := kafkax.DefaultConfig()
				kc.Brokers = brokers
				kc.TopicPrefix = p
				if err := kafkax.DeletePrefixed(kc); err != nil {
					return fmt.Errorf("bench clean: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted the topics %s.*\n", p)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers")
	return cmd
}
