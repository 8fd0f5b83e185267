package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/kafkax"
)

// newBenchLagCmd is `ebbflow bench lag`: the consumer lag of groups on
// topics, for load runs (deploy/dev/scale-run.sh samples it).
func newBenchLagCmd() *cobra.Command {
	var brokers []string
	cmd := &cobra.Command{
		Use:   "lag GROUP=TOPIC...",
		Short: "Print the consumer lag of each GROUP on TOPIC (records between the committed offsets and the log end)",
		Long: `For each GROUP=TOPIC, sums over the topic's partitions the log-end offset
minus the group's committed offset (a partition without a committed offset
counts from the log start). A window processor commits the offset it
would resume from after a crash (the first record of the oldest open
window) and its real position as "next=N" in the commit metadata: that
position is used when present. The log end includes transaction markers: a
group reading a transactional topic shows a lag of up to one record per
partition per open transaction even when it is caught up.`,
		Example: `  ebbflow bench lag --brokers 127.0.0.1:19092 ebbflow-window=ebbflow.metrics.raw.v1`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kc := kafkax.DefaultConfig()
			kc.Brokers = brokers
			sc, err := kc.Sarama()
			if err != nil {
				return err
			}
			client, err := sarama.NewClient(brokers, sc)
			if err != nil {
				return fmt.Errorf("bench lag: connect to %v: %w", brokers, err)
			}
			defer client.Close()
			admin, err := sarama.NewClusterAdminFromClient(client)
			if err != nil {
				return fmt.Errorf("bench lag: admin on %v: %w", brokers, err)
			}
			for _, a := range args {
				group, topic, ok := strings.Cut(a, "=")
				if !ok || group == "" || topic == "" {
					return fmt.Errorf("bench lag: argument %q is not GROUP=TOPIC", a)
				}
				parts, err := client.Partitions(topic)
				if err != nil {
					return fmt.Errorf("bench lag: partitions of %s: %w", topic, err)
				}
				resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
				if errors.Is(err, sarama.ErrGroupIDNotFound) {
					resp, err = nil, nil // no member ever committed: lag from the log start
				}
				if err != nil {
					return fmt.Errorf("bench lag: committed offsets of %s: %w", group, err)
				}
				var lag, end int64
				for _, p := range parts {
					newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
					if err != nil {
						return fmt.Errorf("bench lag: end of %s/%d: %w", topic, p, err)
					}
					from := int64(-1)
					if blk := offsetBlock(resp, topic, p); blk != nil {
						from = blk.Offset
						if next, ok := metaNext(blk.Metadata); ok {
							from = next
						}
					}
					if from < 0 {
						if from, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
							return fmt.Errorf("bench lag: start of %s/%d: %w", topic, p, err)
						}
					}
					end += newest
					lag += max(newest-from, 0)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "group=%s topic=%s partitions=%d end=%d lag=%d\n", group, topic, len(parts), end, lag)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers")
	return cmd
}

// metaNext reads the processed position a window processor records in its
// commit metadata ("…;next=N;…").
func metaNext(md string) (int64, bool) {
	for _, f := range strings.Split(md, ";") {
		if v, ok := strings.CutPrefix(f, "next="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func offsetBlock(resp *sarama.OffsetFetchResponse, topic string, p int32) *sarama.OffsetFetchResponseBlock {
	if resp == nil {
		return nil
	}
	return resp.GetBlock(topic, p)
}
