package ui

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// Topics the UI reads.
var readTopics = []string{schemas.TopicMetricsWindows, schemas.TopicForecasts, schemas.TopicDecisions, schemas.TopicActions}

// Consume reads the windows, forecasts, decisions and actions topics
// (read_committed, every partition, from backfill records before the end)
// into the store until ctx ends. A record that does not decode is counted
// by the store and logged; the consumer goes on.
func Consume(ctx context.Context, kc kafkax.Config, backfill int64, store *Store, log *slog.Logger) error {
	topics := kc.Topics()
	names := make([]string, len(readTopics))
	for i, b := range readTopics {
		names[i] = topics.Name(b)
	}
	// The UI may start before the pipeline: with kafka.create_topics on,
	// the topics are created as the components would create them.
	if err := kafkax.EnsureTopics(ctx, kc, names...); err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	sc, err := kc.Sarama()
	if err != nil {
		return err
	}
	sc.ClientID = "ebbflow-ui"
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	sc.Consumer.Return.Errors = true
	client, err := sarama.NewClient(kc.Brokers, sc)
	if err != nil {
		return fmt.Errorf("ui: connect to kafka %v: %w", kc.Brokers, err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("ui: kafka consumer: %w", err)
	}
	defer consumer.Close()
	var (
		wg  sync.WaitGroup
		pcs []sarama.PartitionConsumer
	)
	stop := func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
	}
	for _, base := range readTopics {
		name := topics.Name(base)
		parts, err := client.Partitions(name)
		if err != nil {
			stop()
			return fmt.Errorf("ui: partitions of %s: %w", name, err)
		}
		for _, p := range parts {
			off := sarama.OffsetOldest
			if backfill > 0 {
				oldest, err1 := client.GetOffset(name, p, sarama.OffsetOldest)
				newest, err2 := client.GetOffset(name, p, sarama.OffsetNewest)
				if err1 == nil && err2 == nil && newest-backfill > oldest {
					off = newest - backfill
				}
			}
			// A topic just created may have no leader yet: retry a while.
			var pc sarama.PartitionConsumer
			for deadline := time.Now().Add(30 * time.Second); ; {
				if pc, err = consumer.ConsumePartition(name, p, off); err == nil {
					break
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					stop()
					return fmt.Errorf("ui: consume %s/%d: %w", name, p, err)
				}
				time.Sleep(500 * time.Millisecond)
				_ = client.RefreshMetadata(name)
			}
			pcs = append(pcs, pc)
			wg.Go(func() {
				errs := pc.Errors()
				for {
					select {
					case m, ok := <-pc.Messages():
						if !ok {
							return
						}
						if err := store.Add(base, kafkax.HeaderValue(m.Headers, schemas.HeaderType), m.Value); err != nil {
							log.Warn("ui: record does not decode", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
						}
					case e, ok := <-errs:
						if !ok {
							errs = nil
							continue
						}
						log.Warn("ui: kafka", "topic", e.Topic, "partition", e.Partition, "err", e.Err)
					}
				}
			})
		}
	}
	<-ctx.Done()
	stop()
	return nil
}

// ConsumeAlerts reads the alerts stream (JetStream, an ordered consumer
// from the start of the stream's retention) into the store until ctx ends.
func ConsumeAlerts(ctx context.Context, js jetstream.JetStream, store *Store, log *slog.Logger) error {
	c, err := js.OrderedConsumer(ctx, schemas.StreamAlerts, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("ui: alerts stream %s: %w", schemas.StreamAlerts, err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		if err := store.Add(kindAlert, m.Headers().Get(schemas.HeaderType), m.Data()); err != nil {
			log.Warn("ui: alert does not decode", "subject", m.Subject(), "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("ui: consume alerts: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}
