package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/IBM/sarama"

	"github.com/ebbflow/ebbflow/internal/kafkax"
)

// DigestsTopicBase is the base name of the topic that keeps the digests of
// committed requests across restarts: <prefix>.ingest.digests.v1.
const DigestsTopicBase = "ingest.digests"

// digestsVersion starts every record value of the digests topic.
const digestsVersion = 1

// The digests topic: each transaction that carries remote_write requests
// also writes one record to it, partition 0, no key, value
//
//	byte    version (1)
//	int64   commit time, unix ms, big endian
//	n × 32  the SHA-256 digests of the transaction's requests
//
// in the same Kafka transaction as the requests' samples, so a
// read_committed reader sees a digest exactly when its samples are
// committed. At start, after the new producer's InitProducerID has
// completed or aborted whatever the previous process left open, ingest
// reads the topic (LoadDigests) and remembers the digests younger than
// publish.dedup_max_age: a resend of a request whose commit answer was
// lost in a crash is then answered 204 without being written again. The
// topic has one partition and time retention (a unique key per record
// makes compaction useless); records older than dedup_max_age are skipped.

func encodeDigests(dst []byte, at time.Time, ds []Digest) []byte {
	dst = append(dst, digestsVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at.UnixMilli()))
	for _, d := range ds {
		dst = append(dst, d[:]...)
	}
	return dst
}

func decodeDigests(v []byte, fn func(atMs int64, d Digest)) error {
	if len(v) < 9 || v[0] != digestsVersion || (len(v)-9)%len(Digest{}) != 0 {
		return fmt.Errorf("ingest: digests record of %d bytes is not version %d with whole digests", len(v), digestsVersion)
	}
	at := int64(binary.BigEndian.Uint64(v[1:9]))
	for r := v[9:]; len(r) > 0; r = r[len(Digest{}):] {
		fn(at, Digest(r[:len(Digest{})]))
	}
	return nil
}

// EnsureDigestsTopic creates the digests topic (one partition, time
// retention of twice maxAge, at least an hour) unless it exists or topic
// creation is off.
func EnsureDigestsTopic(ctx context.Context, kc kafkax.Config, topic string, maxAge time.Duration) error {
	retention := fmt.Sprint(max(2*maxAge, time.Hour).Milliseconds())
	policy := "delete"
	return kafkax.EnsureTopic(ctx, kc, topic, sarama.TopicDetail{NumPartitions: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention, "cleanup.policy": &policy}})
}

// LoadDigests reads partition 0 of the digests topic read_committed from
// its start to the high-water mark it had when LoadDigests began — waiting
// until the last stable offset passes it, so that every transaction
// written before (the previous process's included, which the new
// producer's InitProducerID completed or aborted) is decided — and calls
// fn with each committed digest and its commit time. Aborted transactions
// are skipped as a read_committed consumer skips them. It returns the
// number of records read.
func LoadDigests(ctx context.Context, client sarama.Client, topic string, fn func(atMs int64, d Digest)) (int, error) {
	const part = int32(0)
	off, err := client.GetOffset(topic, part, sarama.OffsetOldest)
	if err != nil {
		return 0, fmt.Errorf("ingest: oldest offset of %s: %w", topic, err)
	}
	end, err := client.GetOffset(topic, part, sarama.OffsetNewest)
	if err != nil {
		return 0, fmt.Errorf("ingest: newest offset of %s: %w", topic, err)
	}
	version := int16(4)
	if client.Config().Version.IsAtLeast(sarama.V2_3_0_0) {
		version = 11
	}
	var (
		records int
		pending []*sarama.AbortedTransaction // aborted transactions not yet reached
		aborted = map[int64]bool{}           // producers inside an aborted transaction
		wait    = 20 * time.Millisecond
	)
	for off < end {
		b, err := client.Leader(topic, part)
		if err != nil {
			return records, fmt.Errorf("ingest: leader of %s/%d: %w", topic, part, err)
		}
		req := &sarama.FetchRequest{Version: version, MinBytes: 1, MaxWaitTime: 0, MaxBytes: 8 << 20,
			Isolation: sarama.ReadCommitted, SessionID: 0, SessionEpoch: -1}
		req.AddBlock(topic, part, off, 8<<20, -1)
		resp, err := b.Fetch(req)
		if err != nil {
			return records, fmt.Errorf("ingest: fetch %s/%d@%d: %w", topic, part, off, err)
		}
		blk := resp.GetBlock(topic, part)
		if blk == nil {
			return records, fmt.Errorf("ingest: fetch %s/%d@%d: no block in the response", topic, part, off)
		}
		if !errors.Is(blk.Err, sarama.ErrNoError) {
			return records, fmt.Errorf("ingest: fetch %s/%d@%d: %w", topic, part, off, blk.Err)
		}
		pending = append(pending, blk.AbortedTransactions...)
		sort.Slice(pending, func(i, j int) bool { return pending[i].FirstOffset < pending[j].FirstOffset })
		progressed := false
		for _, rs := range blk.RecordsSet {
			rb := rs.RecordBatch
			if rb == nil {
				continue
			}
			last := rb.FirstOffset + int64(rb.LastOffsetDelta)
			if last < off {
				continue
			}
			for len(pending) > 0 && pending[0].FirstOffset <= last {
				aborted[pending[0].ProducerID] = true
				pending = pending[1:]
			}
			switch {
			case rb.Control:
				// A commit or abort marker ends its producer's transaction.
				delete(aborted, rb.ProducerID)
			case rb.IsTransactional && aborted[rb.ProducerID]:
			default:
				for _, r := range rb.Records {
					if rb.FirstOffset+r.OffsetDelta < off {
						continue
					}
					if err := decodeDigests(r.Value, fn); err != nil {
						return records, fmt.Errorf("%w (%s/%d@%d)", err, topic, part, rb.FirstOffset+r.OffsetDelta)
					}
					records++
				}
			}
			off, progressed = last+1, true
		}
		if progressed {
			wait = 20 * time.Millisecond
			continue
		}
		// Nothing readable yet: the last stable offset has not passed a
		// transaction still being decided.
		select {
		case <-ctx.Done():
			return records, fmt.Errorf("ingest: reading %s stopped at offset %d of %d (last stable offset %d): %w", topic, off, end, blk.LastStableOffset, ctx.Err())
		case <-time.After(wait):
			wait = min(2*wait, time.Second)
		}
	}
	return records, nil
}

// RememberDigest records that a request with digest d was committed at
// atMs (unix ms), unless that is older than publish.dedup_max_age.
func (p *Publisher) RememberDigest(atMs int64, d Digest) bool {
	if p.dedup == nil || time.Since(time.UnixMilli(atMs)) > p.dedup.maxAge {
		return false
	}
	p.dedup.mu.Lock()
	defer p.dedup.mu.Unlock()
	p.dedup.add(d, time.UnixMilli(atMs).UnixNano())
	return true
}

// WithDigestsTopic makes every transaction also write its requests'
// digests to topic (see LoadDigests).
func WithDigestsTopic(topic string) PublisherOption {
	return func(p *Publisher) { p.digestTopic = topic }
}
