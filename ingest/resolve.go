package ingest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
)

// errUndecided means the partition's last stable offset has not passed the
// transaction yet (its markers are still being written); ask again.
var errUndecided = errors.New("ingest: transaction outcome not visible yet")

// CommitResolver tells whether the transaction whose first record in
// topic/partition is at offset first was committed (true) or aborted
// (false). It returns an error when it cannot tell yet (Kafka unreachable,
// the transaction still open); the caller asks again. It is only asked
// after the producer re-initialised, which completes or aborts the
// transaction on the coordinator, so the answer is final.
type CommitResolver func(topic string, partition int32, first int64) (committed bool, err error)

// FetchResolver resolves with a read_committed fetch at the transaction's
// first offset from the partition leader: once the last stable offset is
// past it, the records are committed unless the response lists an aborted
// transaction of their producer starting at that offset.
func FetchResolver(client sarama.Client) CommitResolver {
	version := int16(4)
	if client.Config().Version.IsAtLeast(sarama.V2_3_0_0) {
		version = 11
	}
	return func(topic string, partition int32, first int64) (bool, error) {
		b, err := client.Leader(topic, partition)
		if err != nil {
			_ = client.RefreshMetadata(topic)
			return false, fmt.Errorf("ingest: leader of %s/%d: %w", topic, partition, err)
		}
		req := &sarama.FetchRequest{Version: version, MinBytes: 1, MaxWaitTime: 0, MaxBytes: 1 << 20,
			Isolation: sarama.ReadCommitted, SessionID: 0, SessionEpoch: -1}
		req.AddBlock(topic, partition, first, 1<<20, -1)
		resp, err := b.Fetch(req)
		if err != nil {
			_ = b.Close()
			_ = client.RefreshMetadata(topic)
			return false, fmt.Errorf("ingest: fetch %s/%d@%d: %w", topic, partition, first, err)
		}
		blk := resp.GetBlock(topic, partition)
		if blk == nil {
			return false, fmt.Errorf("ingest: fetch %s/%d@%d: no block in the response", topic, partition, first)
		}
		if !errors.Is(blk.Err, sarama.ErrNoError) {
			_ = client.RefreshMetadata(topic)
			return false, fmt.Errorf("ingest: fetch %s/%d@%d: %w", topic, partition, first, blk.Err)
		}
		return txnOutcome(blk, first)
	}
}

// txnOutcome decides from a read_committed fetch block starting at first.
func txnOutcome(blk *sarama.FetchResponseBlock, first int64) (bool, error) {
	if blk.LastStableOffset <= first {
		return false, errUndecided
	}
	pid, found := int64(-1), false
	for _, rs := range blk.RecordsSet {
		rb := rs.RecordBatch
		if rb == nil || rb.Control {
			continue
		}
		if rb.FirstOffset <= first && first <= rb.FirstOffset+int64(rb.LastOffsetDelta) {
			if !rb.IsTransactional {
				return false, fmt.Errorf("ingest: record at offset %d is not transactional", first)
			}
			pid, found = rb.ProducerID, true
			break
		}
	}
	if !found {
		return false, fmt.Errorf("ingest: fetch at offset %d returned no batch holding it", first)
	}
	for _, at := range blk.AbortedTransactions {
		if at.ProducerID == pid && at.FirstOffset == first {
			return false, nil
		}
	}
	return true, nil
}

// LazyFetchResolver is FetchResolver on a client built by newClient on
// first use (Kafka is typically unreachable when the publisher starts
// needing it; building fails until it is back). closeFn closes the client.
func LazyFetchResolver(newClient func() (sarama.Client, error)) (r CommitResolver, closeFn func()) {
	var (
		mu     sync.Mutex
		client sarama.Client
		res    CommitResolver
	)
	r = func(topic string, partition int32, first int64) (bool, error) {
		mu.Lock()
		if client == nil {
			c, err := newClient()
			if err != nil {
				mu.Unlock()
				return false, fmt.Errorf("ingest: client to resolve a transaction: %w", err)
			}
			client, res = c, FetchResolver(c)
		}
		res := res
		mu.Unlock()
		return res(topic, partition, first)
	}
	closeFn = func() {
		mu.Lock()
		defer mu.Unlock()
		if client != nil {
			_ = client.Close()
			client = nil
		}
	}
	return r, closeFn
}

// ResolveWith sets how the publisher resolves a transaction whose commit
// answer was lost. Without one, such a transaction's requests are answered
// 503 and their resends may duplicate them. Call it before publishing.
func (p *Publisher) ResolveWith(r CommitResolver) { p.resolve = r }
