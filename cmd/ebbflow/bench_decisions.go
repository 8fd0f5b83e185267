package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

func newBenchDecisionsCmd() *cobra.Command {
	var (
		brokers        []string
		topic, windows string
		idle, follow   time.Duration
		list           int
	)
	cmd := &cobra.Command{
		Use:   "decisions",
		Short: "Count the scale decisions on a decisions topic and, following it live, how long after their window each came",
		Long: `Without --follow, reads every record of --topic (read_committed) as a
scale decision and prints how many there are (up, down, distinct targets,
by the guard that had the last word) and the first --list of them with
their reasons.

With --follow DURATION, it instead reads --topic and --windows (the
metrics.windows topic the decider reads) from their log end as records
arrive, for DURATION or until interrupted (SIGINT/SIGTERM), and stamps
each record with the wall time it arrived (ebbflow's records carry event
time, not write time). It then also reports, per decision, p50/p95/max
of:
  window_close_to_decision_s: from the arrival of the first window of the
    decision's entity ending at the decision's at_ms (the window's close,
    as a downstream reader sees it) to the decision's arrival: forecast,
    decider and Kafka after windowing;
  window_end_to_decision_s: from at_ms (the window's end, event time) to
    the decision's arrival: the above plus the window processor's wait for
    late data; meaningful when sample timestamps are the wall clock (as
    bench ingest's are).`,
		Example: `  ebbflow bench decisions --brokers 127.0.0.1:19092 --topic ebbflow.decisions.v1
  ebbflow bench decisions --brokers 127.0.0.1:19092 --topic ebbflow.decisions.v1 --windows ebbflow.metrics.windows.v1 --follow 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kc := kafkax.DefaultConfig()
			kc.Brokers = brokers
			sc, err := kc.Sarama()
			if err != nil {
				return err
			}
			sc.Consumer.IsolationLevel = sarama.ReadCommitted
			client, err := sarama.NewClient(brokers, sc)
			if err != nil {
				return fmt.Errorf("bench decisions: connect to %v: %w", brokers, err)
			}
			defer client.Close()
			w := newDecisionWatch(topic)
			if follow <= 0 {
				if err := readTopic(client, topic, idle, func(m *sarama.ConsumerMessage) { w.observe(m, time.Time{}) }); err != nil {
					return err
				}
			} else {
				if windows == "" {
					return fmt.Errorf("bench decisions: --follow needs --windows")
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), follow)
				defer cancel()
				if err := followTopics(ctx, client, []string{topic, windows}, nil, w.observe); err != nil {
					return err
				}
			}
			w.print(cmd.OutOrStdout(), list, follow > 0)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers")
	f.StringVar(&topic, "topic", kafkax.DefaultConfig().Topics().Name(schemas.TopicDecisions), "decisions topic")
	f.StringVar(&windows, "windows", "", "metrics.windows topic, with --follow: time each decision from its window's close")
	f.DurationVar(&follow, "follow", 0, "follow --topic and --windows live for this long (or until interrupted) and time each decision; 0 reads --topic as it is")
	f.DurationVar(&idle, "idle", 3*time.Second, "without --follow: stop reading a partition after this long without a record (transaction markers end a partition before its log end)")
	f.IntVar(&list, "list", 5, "print the first N decisions with their reasons")
	return cmd
}

type arrivedDecision struct {
	d  schemas.ScaleDecision
	at time.Time // arrival (with --follow)
}

// decisionWatch collects the decisions of a topic and the arrival of the
// windows of any other topic.
type decisionWatch struct {
	topic  string
	decs   []arrivedDecision
	bad    int                  // records of topic that are not decisions
	closed map[string]time.Time // entity|end_ms → first window record's arrival
}

func newDecisionWatch(topic string) *decisionWatch {
	return &decisionWatch{topic: topic, closed: map[string]time.Time{}}
}

// observe records one record that arrived at at.
func (w *decisionWatch) observe(m *sarama.ConsumerMessage, at time.Time) {
	if m.Topic == w.topic {
		d, err := schemas.Decode[schemas.ScaleDecision](m.Value)
		if err != nil {
			w.bad++
			return
		}
		w.decs = append(w.decs, arrivedDecision{d, at})
		return
	}
	// A window's record timestamp is its end (event time) and its key its
	// entity: no need to decode it.
	k := string(m.Key) + "|" + strconv.FormatInt(m.Timestamp.UnixMilli(), 10)
	if _, ok := w.closed[k]; !ok {
		w.closed[k] = at
	}
}

func (w *decisionWatch) print(out io.Writer, list int, timed bool) {
	topic, decs, bad, closed := w.topic, w.decs, w.bad, w.closed
	up, down := 0, 0
	targets := map[string]bool{}
	guards := map[string]int{}
	var afterEnd, afterClose []float64
	for _, x := range decs {
		if x.d.To > x.d.From {
			up++
		} else {
			down++
		}
		targets[x.d.Target.Key()] = true
		g := x.d.Reason.Guard
		if g == "" {
			g = "none"
		}
		guards[g]++
		if timed {
			afterEnd = append(afterEnd, float64(x.at.UnixMilli()-x.d.AtMs)/1000)
			if t, ok := closed[x.d.Entity+"|"+strconv.FormatInt(x.d.AtMs, 10)]; ok {
				afterClose = append(afterClose, x.at.Sub(t).Seconds())
			}
		}
	}
	fmt.Fprintf(out, "topic=%s decisions=%d up=%d down=%d targets=%d not_decisions=%d\n", topic, len(decs), up, down, len(targets), bad)
	if len(decs) > 0 {
		fmt.Fprintf(out, "guards:")
		for _, g := range sortedKeysOf(guards) {
			fmt.Fprintf(out, " %s=%d", g, guards[g])
		}
		fmt.Fprintln(out)
	}
	if timed {
		fmt.Fprintf(out, "window_close_to_decision_s %s (decisions matched to their window: %d of %d)\n", quantiles(afterClose), len(afterClose), len(decs))
		fmt.Fprintf(out, "window_end_to_decision_s %s\n", quantiles(afterEnd))
	}
	for i, x := range decs {
		if i >= list {
			break
		}
		fmt.Fprintf(out, "decision %s %d→%d at_ms=%d guard=%q: %s\n", x.d.Target.Key(), x.d.From, x.d.To, x.d.AtMs, x.d.Reason.Guard, x.d.Reason.Summary)
	}
}

// followTopics calls fn with every record written to topics from now on,
// with its arrival time, until ctx is done. fn runs on one goroutine.
// ready (if not nil) is called once every partition is being followed.
func followTopics(ctx context.Context, client sarama.Client, topics []string, ready func(), fn func(*sarama.ConsumerMessage, time.Time)) error {
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer cons.Close()
	msgs := make(chan *sarama.ConsumerMessage, 1024)
	var pcs []sarama.PartitionConsumer
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
	}()
	for _, tp := range topics {
		parts, err := client.Partitions(tp)
		if err != nil {
			return fmt.Errorf("bench: partitions of %s: %w", tp, err)
		}
		for _, p := range parts {
			pc, err := cons.ConsumePartition(tp, p, sarama.OffsetNewest)
			if err != nil {
				return fmt.Errorf("bench: read %s/%d: %w", tp, p, err)
			}
			pcs = append(pcs, pc)
			go func() {
				for m := range pc.Messages() {
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					}
				}
			}()
		}
	}
	if ready != nil {
		ready()
	}
	for {
		select {
		case m := <-msgs:
			fn(m, time.Now())
		case <-ctx.Done():
			return nil
		}
	}
}

// readTopic calls fn with every record of topic, partition by partition,
// from the oldest offset to the log end at the call.
func readTopic(client sarama.Client, topic string, idle time.Duration, fn func(*sarama.ConsumerMessage)) error {
	parts, err := client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("bench: partitions of %s: %w", topic, err)
	}
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer cons.Close()
	for _, p := range parts {
		from, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("bench: start of %s/%d: %w", topic, p, err)
		}
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("bench: end of %s/%d: %w", topic, p, err)
		}
		if end <= from {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, from)
		if err != nil {
			return fmt.Errorf("bench: read %s/%d: %w", topic, p, err)
		}
	read:
		for {
			select {
			case m := <-pc.Messages():
				fn(m)
				if m.Offset >= end-1 {
					break read
				}
			case <-time.After(idle):
				break read
			}
		}
		pc.Close()
	}
	return nil
}

// quantiles formats p50, p95 and max of xs (seconds).
func quantiles(xs []float64) string {
	if len(xs) == 0 {
		return "n=0"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50=%.2f p95=%.2f max=%.2f", len(s), q(0.5), q(0.95), s[len(s)-1])
}

func sortedKeysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
