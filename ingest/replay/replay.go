// Package replay re-publishes the metric history to Kafka: windows read
// from the Parquet history (HDFS or a local directory) are produced in
// event-time order, with their original timestamps and event ids, at a
// chosen speed (a multiple of real time, or as fast as Kafka takes them),
// for analysts and backtests. `ebbflow replay` is its command line.
package replay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// Config says what to replay, where and how fast.
type Config struct {
	// From and To bound the window starts: From <= start < To. Zero To
	// means no upper bound.
	From, To time.Time
	// Speed is "max" or a multiple of real time such as "60x" (one minute of
	// event time per second).
	Speed string
	// SizeS selects one window size in seconds (0 = every size).
	SizeS int64
	// Entities and Signals select (empty = all).
	Entities []string
	Signals  []string
	// Topic is the full destination topic name; empty means the
	// metrics.windows topic of the Kafka prefix.
	Topic string
	// Source is the CloudEvents source; default /ebbflow/replay.
	Source string
	// BatchSize bounds the windows per produce request.
	BatchSize int
}

// ParseSpeed returns the real-time multiple of a speed ("60x", "1x",
// "0.5x"), or 0 for "max". Case and surrounding spaces are ignored; the
// multiple must carry its "x" and be positive and finite. It is the one
// parser of --speed (replay and `ebbflow dev`).
func ParseSpeed(s string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "max" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "x"), 64)
	if err != nil || !strings.HasSuffix(t, "x") || !(v > 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("speed %q: want max or a positive multiple such as 60x", s)
	}
	return v, nil
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if _, err := ParseSpeed(c.Speed); err != nil {
		return err
	}
	if !c.To.IsZero() && !c.To.After(c.From) {
		return fmt.Errorf("to: %s is not after from %s", c.To.Format(time.RFC3339), c.From.Format(time.RFC3339))
	}
	if c.SizeS < 0 {
		return fmt.Errorf("size: %d is negative", c.SizeS)
	}
	return nil
}

// Deps are what Run works with.
type Deps struct {
	// History and HistoryRoot locate the history to read.
	History     history.FS
	HistoryRoot string
	// Kafka is the destination cluster.
	Kafka kafkax.Config
	// Producer, when set, is used instead of one built from Kafka (tests,
	// `ebbflow dev`); Run does not close it.
	Producer sarama.SyncProducer
	Logger   *slog.Logger
	// Registerer receives ebbflow_replay_* metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Progress receives a progress bar (a terminal) — nil for none.
	Progress io.Writer
	// Sleep waits between event-time steps; default a timer honouring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Summary describes what was replayed.
type Summary struct {
	Rows     int
	Entities int
	Signals  int
	// FirstMs and LastMs are the event times (window ends) of the first
	// and last window replayed.
	FirstMs, LastMs int64
	Topic           string
	Elapsed         time.Duration
}

// String is the one-line summary `ebbflow replay` prints.
func (s Summary) String() string {
	if s.Rows == 0 {
		return "replayed 0 windows (nothing in the history matched)"
	}
	span := time.Duration(s.LastMs-s.FirstMs) * time.Millisecond
	return fmt.Sprintf("replayed %d windows of %d entities (%d signals) to %s: event time %s → %s (%s) in %s",
		s.Rows, s.Entities, s.Signals, s.Topic,
		time.UnixMilli(s.FirstMs).UTC().Format(time.RFC3339), time.UnixMilli(s.LastMs).UTC().Format(time.RFC3339),
		span, s.Elapsed.Round(time.Millisecond))
}

// Run reads the selected windows from the history and produces them in
// event-time order (window end, then entity, signal, size) to the topic,
// pacing event time at cfg.Speed. The windows keep their event ids, so a
// consumer can tell a replayed window from nothing but its topic.
func Run(ctx context.Context, cfg Config, deps Deps) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, fmt.Errorf("replay: %w", err)
	}
	speed, _ := ParseSpeed(cfg.Speed)
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Sleep == nil {
		deps.Sleep = sleep
	}
	if cfg.Source == "" {
		cfg.Source = "/ebbflow/replay"
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	topic := cfg.Topic
	if topic == "" {
		topic = deps.Kafka.Topics().Name(schemas.TopicMetricsWindows)
	}
	rows := prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_replay_windows_total", Help: "Windows replayed to Kafka."})
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(rows); err != nil {
			return Summary{}, fmt.Errorf("replay: register metrics: %w", err)
		}
	}
	q := history.Query{SizeS: cfg.SizeS, FromMs: cfg.From.UnixMilli(), Entities: cfg.Entities, Signals: cfg.Signals}
	if cfg.From.IsZero() {
		q.FromMs = 0
	}
	if !cfg.To.IsZero() {
		q.ToMs = cfg.To.UnixMilli()
	}
	ws, err := history.ReadWindows(ctx, deps.History, deps.HistoryRoot, q)
	if err != nil {
		return Summary{}, fmt.Errorf("replay: %w", err)
	}
	sort.SliceStable(ws, func(i, j int) bool {
		a, b := &ws[i], &ws[j]
		if a.EndMs != b.EndMs {
			return a.EndMs < b.EndMs
		}
		if a.Entity != b.Entity {
			return a.Entity < b.Entity
		}
		if a.Signal != b.Signal {
			return a.Signal < b.Signal
		}
		return a.SizeS < b.SizeS
	})
	sum := Summary{Topic: topic}
	if len(ws) == 0 {
		return sum, nil
	}
	prod := deps.Producer
	if prod == nil {
		sc, err := deps.Kafka.IdempotentProducer()
		if err != nil {
			return sum, fmt.Errorf("replay: %w", err)
		}
		if err := kafkax.EnsureTopics(ctx, deps.Kafka, topic); err != nil {
			return sum, fmt.Errorf("replay: %w", err)
		}
		prod, err = sarama.NewSyncProducer(deps.Kafka.Brokers, sc)
		if err != nil {
			return sum, fmt.Errorf("replay: connect to %v: %w", deps.Kafka.Brokers, err)
		}
		defer prod.Close()
	}
	bar := newProgress(deps.Progress, len(ws))
	defer bar.done()
	start := time.Now()
	firstMs := ws[0].EndMs
	ents, sigs := map[string]bool{}, map[string]bool{}
	batch := make([]*sarama.ProducerMessage, 0, cfg.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := prod.SendMessages(batch); err != nil {
			return fmt.Errorf("replay: produce %d windows to %s: %w", len(batch), topic, err)
		}
		rows.Add(float64(len(batch)))
		sum.Rows += len(batch)
		bar.set(sum.Rows)
		batch = batch[:0]
		return nil
	}
	for i := range ws {
		w := ws[i]
		if speed > 0 && (i == 0 || w.EndMs != ws[i-1].EndMs) {
			// Flush the previous event-time step, then wait for this one.
			if err := flush(); err != nil {
				return sum, err
			}
			due := start.Add(time.Duration(float64(w.EndMs-firstMs) / speed * float64(time.Millisecond)))
			if d := time.Until(due); d > 0 {
				if err := deps.Sleep(ctx, d); err != nil {
					sum.Elapsed = time.Since(start)
					return sum, err
				}
			}
		}
		m, err := kafkax.NewMessage(topic, cfg.Source, w)
		if err != nil {
			return sum, fmt.Errorf("replay: window %s: %w", w.EventID(), err)
		}
		batch = append(batch, m)
		ents[w.Entity], sigs[w.Signal] = true, true
		sum.LastMs = w.EndMs
		if len(batch) >= cfg.BatchSize {
			if err := flush(); err != nil {
				return sum, err
			}
		}
		if err := ctx.Err(); err != nil {
			sum.Elapsed = time.Since(start)
			return sum, err
		}
	}
	if err := flush(); err != nil {
		return sum, err
	}
	sum.FirstMs, sum.Entities, sum.Signals = firstMs, len(ents), len(sigs)
	sum.Elapsed = time.Since(start)
	deps.Logger.Info("replay finished", "summary", sum.String())
	return sum, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// IsTerminal reports whether f is a character device (a terminal), where
// a progress bar belongs.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress draws a one-line bar, redrawn at most every 100 ms.
type progress struct {
	w     io.Writer
	total int
	last  time.Time
	n     int
}

func newProgress(w io.Writer, total int) *progress { return &progress{w: w, total: total} }

func (p *progress) set(n int) {
	p.n = n
	if p.w == nil || (time.Since(p.last) < 100*time.Millisecond && n < p.total) {
		return
	}
	p.last = time.Now()
	const width = 40
	filled := width * n / max(p.total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d windows", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), n, p.total)
}

func (p *progress) done() {
	if p.w != nil && p.n > 0 {
		fmt.Fprintln(p.w)
	}
}
