//go:build integration

package ingest

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
	"github.com/ebbflow/ebbflow/schemas"
)

// TestKafkaOutagePrometheusRetries cuts ingest off from Kafka three times
// while a real Prometheus remote-writes to it: at an arbitrary moment,
// exactly between a transaction's produce acknowledgements and its EndTxn
// (the transaction aborts), and right after the coordinator answered the
// EndTxn, before ingest reads the answer (the transaction committed and
// ingest cannot know). Ingest answers 503/429 with Retry-After, Prometheus
// retries, and once Kafka is reachable again every sample the target
// exposed before, during and after the outages is in the topic
// (read_committed) exactly once.
func TestKafkaOutagePrometheusRetries(t *testing.T) {
	srv := &served{}
	target := httptest.NewServer(srv.handler())
	defer target.Close()
	dialer := &cuttableDialer{}
	kc := kafkax.DefaultConfig()
	kc.Brokers = strings.Split(requireEnv(t, "EBBFLOW_TEST_KAFKA_BROKERS"), ",")
	pc := DefaultConfig().Publish
	pc.Retries, pc.RetryBackoff, pc.RetryAfter = 3, 300*time.Millisecond, time.Second
	pc.TransactionalID = fmt.Sprintf("ingest-outage-test-%d", time.Now().UnixNano())
	sc, err := ProducerConfig(kc, pc)
	if err != nil {
		t.Fatal(err)
	}
	sc.Net.Proxy.Enable, sc.Net.Proxy.Dialer = true, dialer
	sc.Net.DialTimeout, sc.Net.ReadTimeout, sc.Net.WriteTimeout = 2*time.Second, 3*time.Second, 3*time.Second
	sc.Metadata.Retry.Max, sc.Metadata.Retry.Backoff = 2, 200*time.Millisecond
	sc.Producer.Transaction.Retry.Max = 8 // EndTxn retried ~2 s, shorter than the outages
	newProd := func() (sarama.AsyncProducer, error) { return newAsyncProducer(kc.Brokers, sc) }
	newClient := func() (sarama.Client, error) { return sarama.NewClient(kc.Brokers, sc) }
	// The hooks are fixed when ingest starts; these pointers arm them.
	var beforeCommitHook atomic.Pointer[func()]
	var commitFailedHook atomic.Pointer[func(error)]
	hooks := PublishHooks{
		BeforeCommit: func() {
			if h := beforeCommitHook.Load(); h != nil {
				(*h)()
			}
		},
		CommitFailed: func(err error) {
			if h := commitFailedHook.Load(); h != nil {
				(*h)(err)
			}
		},
	}
	u := startIngest(t, Deps{NewProducer: newProd, NewClient: newClient, PublishHooks: hooks}, func(c *Config) { c.Publish = pc })
	instance := strings.TrimPrefix(target.URL, "http://")
	startPrometheus(t, instance, u.url)

	waitScrapes := func(n int) {
		deadline := time.Now().Add(90 * time.Second)
		for len(srv.timestamps()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("target scraped %d times, want %d", len(srv.timestamps()), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor := func(what string, within time.Duration, cond func() bool) {
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not happen within %v", what, within)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	refusals := func() float64 { return gatheredCounterLabel(t, u, "503") + gatheredCounterLabel(t, u, "429") }
	resolved := func(outcome string) float64 {
		return gatheredCounterLabelOf(t, u, "ebbflow_ingest_commits_resolved_total", "outcome", outcome)
	}
	// sarama retries a failed EndTxn (each attempt looking the coordinator
	// up again, with metadata retries) for several seconds, longer on a
	// loaded machine, so the outages end on events, not after a fixed
	// number of scrapes. commitFailed is signalled by the failure of the commit whose
	// EndTxn was targeted: one that fails once targeted() holds. Commits
	// run one after the other, so an earlier commit's failure comes
	// before the targeted cut.
	commitFailed := make(chan struct{}, 1)
	var targeted atomic.Pointer[func() bool]
	onCommitFailed := func(error) {
		if f := targeted.Load(); f != nil && (*f)() {
			select {
			case commitFailed <- struct{}{}:
			default:
			}
		}
	}
	commitFailedHook.Store(&onCommitFailed)
	received := func(c <-chan struct{}) func() bool {
		return func() bool {
			select {
			case <-c:
				return true
			default:
				return false
			}
		}
	}
	// outage cuts Kafka off (cut returns once the cut happened), waits
	// until ingest refused a request and the target was scraped at least
	// minScrapes times meanwhile, and, for a cut of a transaction's commit,
	// until that commit failed while Kafka was still unreachable: else
	// sarama's EndTxn retries reach Kafka once restored and the lost
	// answer is never resolved. After restoring it waits for the commit's
	// outcome to be resolved as outcome.
	outage := func(name string, cut func(), cutHappened func() bool, minScrapes int, outcome string) {
		before := refusals()
		resolvedBefore := 0.0
		if outcome != "" {
			resolvedBefore = resolved(outcome)
			targeted.Store(&cutHappened)
			defer targeted.Store(nil)
		}
		cut()
		n := len(srv.timestamps())
		if outcome != "" {
			waitFor(name+": the cut commit failing", 3*time.Minute, received(commitFailed))
		}
		waitFor(name+": a 503/429", 2*time.Minute, func() bool { return refusals() > before })
		waitScrapes(n + minScrapes)
		refused := refusals() - before
		dialer.Restore()
		t.Logf("%s: restored Kafka after %d scrapes; ingest refused %v requests meanwhile", name, len(srv.timestamps())-n, refused)
		if outcome != "" {
			waitFor(name+": the lost commit answer resolved as "+outcome, 2*time.Minute, func() bool { return resolved(outcome) > resolvedBefore })
		}
		waitScrapes(len(srv.timestamps()) + 4)
	}
	waitScrapes(3)
	outage("cut at an arbitrary moment", dialer.Cut, nil, 8, "")

	cutBeforeEndTxn := make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() {
			dialer.Cut()
			close(cutBeforeEndTxn)
		})
	}
	beforeCommitHook.Store(&hook)
	cutDone := received(cutBeforeEndTxn)
	outage("cut between produce acks and EndTxn", func() {
		waitFor("a commit", 2*time.Minute, cutDone)
	}, cutDone, 6, "aborted")
	beforeCommitHook.Store(nil)

	dialer.ArmEndTxn()
	outage("cut after the EndTxn, before its answer", func() {
		waitFor("an EndTxn", 2*time.Minute, dialer.Fired)
	}, dialer.Fired, 6, "committed")

	tss := srv.timestamps()
	want := expectedKeys(t, tss, instance)
	got := consumeRaw(t, u.kc.Brokers, u.topic, func(have []schemas.RawSample) bool { return containsAll(have, want) })
	// Let any late duplicate arrive before counting.
	time.Sleep(3 * time.Second)
	n := len(got)
	got = consumeRaw(t, u.kc.Brokers, u.topic, func(have []schemas.RawSample) bool { return len(have) >= n && containsAll(have, want) })
	counts := map[string]int{}
	for _, s := range got {
		if want[rawKey(s)] {
			counts[rawKey(s)]++
		}
	}
	lost, dups := 0, 0
	for k := range want {
		switch n := counts[k]; {
		case n == 0:
			lost++
			t.Errorf("lost: %s", k)
		case n > 1:
			dups++
			t.Errorf("in Kafka %d times, want once: %s", n, k)
		}
	}
	committed := gatheredCounterLabelOf(t, u, "ebbflow_ingest_commits_resolved_total", "outcome", "committed")
	aborted := gatheredCounterLabelOf(t, u, "ebbflow_ingest_commits_resolved_total", "outcome", "aborted")
	dupReqs := gatheredCounterLabelOf(t, u, "ebbflow_ingest_duplicate_requests_total", "", "")
	if committed < 1 || aborted < 1 {
		t.Errorf("lost commit answers resolved: committed %v, aborted %v; want ≥ 1 each (the two targeted cuts)", committed, aborted)
	}
	t.Logf("%d expected samples across %d scrapes (3 outages): %d lost, %d duplicated; lost commit answers resolved committed %v, aborted %v; resends acknowledged without writing: %v",
		len(want), len(tss), lost, dups, committed, aborted, dupReqs)
}

func gatheredCounterLabel(t *testing.T, u *ingestUnderTest, code string) float64 {
	t.Helper()
	mfs, err := u.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ebbflow_ingest_remote_write_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() == code {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// gatheredCounterLabelOf returns the counter name{label=value} (any
// series when label is empty), 0 when absent.
func gatheredCounterLabelOf(t *testing.T, u *ingestUnderTest, name, label, value string) float64 {
	t.Helper()
	mfs, err := u.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
