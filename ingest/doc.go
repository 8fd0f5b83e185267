// Package ingest is ebbflow's front door. It scrapes Prometheus targets
// (static ones, and pods discovered through the Kubernetes API by their
// prometheus.io/* annotations), receives Prometheus remote_write requests,
// maps each series to one of ebbflow's canonical signals for an entity
// (svc/<cluster>/<namespace>/<workload>, node/<cluster>/<node>) with
// configurable rules, and publishes the samples to Kafka's metrics.raw
// topic as Arrow IPC batches: one record per partition per request, the
// entity a column of every row (see Publisher.encode).
//
// Nothing is acknowledged before Kafka has acknowledged it: the
// remote_write receiver answers 2xx only after every record of the request
// is written with acks=all, and answers 429 or 503 with Retry-After when the
// bounded publish buffer is full or the brokers are failing, so the sender
// retries instead of losing data.
//
// # Exactly once per acknowledged request
//
// Requests are written in Kafka transactions. A failed record aborts the
// transaction and its requests are answered 503; nothing of them is
// visible to read_committed consumers, so Prometheus' retry is written
// once. The hard case is a cut while EndTxn(commit) is in flight: the
// coordinator may have committed and ingest cannot know. Ingest answers
// 503 at once (Prometheus retries), then resolves the outcome: it replaces
// the producer, whose InitProducerID completes or aborts the pending
// transaction on the coordinator, and does a read_committed fetch at the
// transaction's first offset in one of its partitions (known from the
// produce acknowledgements): past the last stable offset, the records are
// committed unless the fetch lists an aborted transaction of their
// producer starting there (FetchResolver).
//
// Every request is identified by a Digest: SHA-256 over the canonical
// form of the decoded request (labels in the order sent, timestamps and
// value bits), so a resend matches whatever its protocol version or
// compression. The publisher remembers the digests of committed requests
// (publish.dedup_requests, publish.dedup_max_age) and claims a digest
// while its request is written or its outcome resolved. A resend of a
// committed request is answered 2xx without writing
// (ebbflow_ingest_duplicate_requests_total); a resend while the outcome is
// unknown waits up to remote_write.backpressure_wait and gets 503.
//
// Corner cases:
//   - Collisions: two different requests sharing a SHA-256 digest would
//     make the second be dropped as a duplicate; at 2^-128 for a pair this
//     is negligible.
//   - Identical content sent twice on purpose is deduplicated too; the
//     samples would be duplicates in any time-series store anyway.
//   - Bounds: a resend arriving after its digest was evicted (more than
//     dedup_requests newer commits, or older than dedup_max_age) is written
//     again. Prometheus retries within minutes; the defaults (100,000
//     requests, 30 min) cover hours of retries at moderate rates.
//   - Restart: each transaction also writes its requests' digests to the
//     digests topic (publish.persist_digests), so they become visible
//     exactly when the samples do. Run creates the producers first (their
//     InitProducerID completes or aborts the previous process's open
//     transactions), then reads the digests topic read_committed up to the
//     high-water mark it had at start (waiting until the last stable
//     offset passes it) and remembers the digests younger than
//     dedup_max_age before accepting requests (LoadDigests). A request
//     whose commit answer was lost in a crash and whose resend reaches the
//     restarted ingest is acknowledged without writing. At Close, a
//     transaction still being resolved is given up (counted "unknown");
//     its digests are in the topic if it committed, so a restarted ingest
//     still recognises its resends. Without persist_digests the guarantee
//     is exactly once within one process lifetime, at least once across
//     restarts.
//   - Prometheus' sample_age_limit makes a retried request drop old
//     samples; the shorter request has another digest and its remaining
//     samples are written again if the first attempt committed.
//   - With publish.transactional off there is no deduplication
//     (at-least-once).
//
// Run starts everything from a Config; the pieces (Decoder, Mapper,
// Publisher, Receiver, Scraper, Discovery) are usable on their own.
package ingest
