// Package window runs the event-time window processors: a Kafka consumer
// group on metrics.raw that aggregates each entity's signals into tumbling
// windows, produces them exactly once to metrics.windows in Kafka
// transactions, and writes them to the Parquet history.
//
// # Windows
//
// Every sample goes to one tumbling window per configured size, [start,
// start+size) with start = floor(ts/size)*size (UTC epoch aligned), keyed by
// (entity, signal, size, start). A window holds count, sum, min, max, mean,
// last (the value with the largest timestamp; on a tie the one read last),
// p50/p95/p99 from one DDSketch per window (not per series: memory scales
// with windows, not pods; relative accuracy Config.SketchAccuracy, the
// value at rank floor(q·(n−1)), numpy's "lower" quantile) and, for counters,
// the rate. Prometheus stale markers are skipped and counted; NaN and
// infinite values are dead-lettered with reason "invalid".
//
// Rate: counters are followed per series (entity, signal, metric and the
// full label set), because several pods' counters interleave in one
// entity's stream. Each sample of a series that is newer than the series'
// previous sample (and at most Config.Staleness after it) carries the
// increase since that sample — its value minus the previous one, or its
// whole value when the counter went down (a reset) — into the window the
// sample falls in. The window's rate is the sum of these increases over all
// its series divided by the window size. Increases therefore add up across
// windows to the counter's total increase, whatever the scrape interval.
//
// # Watermarks and lateness
//
// Each input partition has a watermark: the largest event time seen minus
// Config.Delay. A window is emitted (revision 0) once the watermark reaches
// its end. It stays in memory until the watermark passes end +
// Config.AllowedLateness; a sample arriving for it meanwhile updates it and
// a new revision (a larger Revision, same window) is emitted at the next
// commit. A sample for a window past its allowed lateness is dead-lettered
// with reason "late" (the samples as Arrow IPC in the payload) and counted;
// with several sizes, a sample too late for a small window but not for a
// large one is dead-lettered and still counted in the large one.
// A partition that receives no record for Config.IdleTimeout advances its
// watermark with the wall clock from its last data, so its windows close.
//
// # Exactly once
//
// Each claimed input partition has its own transactional producer (id
// <group>-<topic>-<partition>); creating it fences a previous owner and
// completes or aborts its open transaction. A transaction carries the
// windows and dead letters produced since the last one, and the consumer
// offset, committed through AddOffsetsToTxn. So the output and the input
// position move together or not at all.
//
// The subtle part is the open windows: they live only in memory. The
// committed offset is therefore not the position reached but the resume
// offset: the earliest input record still needed to rebuild the state —
// the first record of every retained window, the record preceding each of
// its counter samples in their series, and the last record of every live
// counter series. The offset metadata carries the rest of the committed
// state: next (the position reached), the watermark, and the largest
// revision emitted for a retained window.
//
// On assignment, the processor resumes at the committed offset with the
// committed watermark and re-reads [resume, next) in rebuild mode: samples
// rebuild the retained windows and the counter series but emit nothing, and
// samples whose windows the committed watermark had already closed for
// good are skipped (they were emitted or dead-lettered before). Every
// retained window's records lie in that range, so each is rebuilt exactly
// as it was at the commit. Those the committed watermark had closed are
// marked emitted — their content equals what was last emitted, since every
// commit emits all pending windows and revisions — and later revisions
// continue above the committed revision floor, so no window id (entity,
// signal, size, start, revision) is ever emitted twice. From next on,
// processing is normal. A crash anywhere — mid-window, mid-transaction,
// after writing history, before committing — loses the uncommitted
// transaction, which Kafka aborts, and replays its input.
//
// # History
//
// Each transaction's windows are written with history.WriteWindows to one
// file per Hive partition, named part-p<partition>-o<first>-<last>-w<watermark>.parquet
// from the offsets and watermark it covers, under a temporary hidden name
// renamed into place before the commit. A crash after the rename and
// before the commit leaves a file of an uncommitted transaction: on
// assignment, the processor removes this partition's files that start at
// or past the committed position (those of idle flushes, with no records,
// when their watermark is past the committed one) before writing anything,
// and the replay writes their windows again. Readers skip hidden files, so
// no partial file is ever visible, and history.ReadWindows keeps the
// highest revision of each window.
//
// Limits: a fenced owner that is still running (a zombie during a
// rebalance) can rename a file after the new owner's clean-up; its Kafka
// transaction fails, but that history file stays. One consumer group per
// history root: file names carry the input partition, not the group.
//
// Concurrency: Run starts one goroutine per claimed partition (sarama's
// ConsumeClaim); each partition's state is owned by its goroutine.
package window
