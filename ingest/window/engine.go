package window

import (
	"math"

	"github.com/ebbflow/ebbflow/schemas"
)

// engine is the Kafka-free core of one partition's processing: the window
// state plus the bookkeeping of what was committed, so that a restart
// rebuilds exactly the state the last commit left. The processor feeds it
// records and commits what flush returns; tests drive it directly through
// crashes and restarts. It is not safe for concurrent use.
type engine struct {
	st *partitionState
	// committed is the state of the last commit (or the one restored).
	committed commitMeta
	hasMeta   bool
	// resumeFrom is the first offset to read; records below it are skipped.
	resumeFrom int64
	// restoredNext is the committed position at the restore: records
	// below it were processed before and are only rebuilt (-1: none).
	restoredNext int64
	// rebuilding is true until the windows rebuilt from records below
	// restoredNext are marked as already emitted.
	rebuilding bool
	lastSeen   int64
	// next is the offset after the last record processed (not rebuilt).
	next int64
	// batchFirst and batchRecs describe the records since the last commit.
	batchFirst int64
	batchRecs  int
}

// recordResult says what one record did.
type recordResult struct {
	rebuild         bool
	late, invalid   []schemas.RawSample
	accepted, stale int
	advanced        bool
}

func newEngine(set Settings) (*engine, error) {
	st, err := newPartitionState(set)
	if err != nil {
		return nil, err
	}
	return &engine{st: st, next: -1, restoredNext: -1, lastSeen: -1}, nil
}

// restore sets the engine to the committed state: resume is the committed
// offset, meta its metadata (ok false when there is none). Without
// committed state, start is where reading begins.
func (e *engine) restore(resume int64, meta commitMeta, ok bool, start int64) {
	if resume < 0 {
		e.resumeFrom, e.next = start, -1
		return
	}
	if !ok {
		meta = commitMeta{next: resume}
	}
	e.resumeFrom, e.committed, e.hasMeta, e.next = resume, meta, true, meta.next
	e.restoredNext = meta.next
	if meta.hasWM {
		e.st.wm, e.st.hasWM, e.st.maxTs = meta.wm, true, meta.wm+e.st.set.DelayMs
	}
	e.rebuilding = resume < meta.next
	if !e.rebuilding {
		e.st.finishRebuild(meta.revFloor)
	}
}

// skip reports whether a record at offset is before the resume point.
func (e *engine) skip(offset int64) bool { return offset < e.resumeFrom }

// record applies one decoded record.
func (e *engine) record(offset int64, samples []schemas.RawSample) recordResult {
	return e.recordAt(offset, math.MaxInt64, samples)
}

// recordAt applies one decoded record whose samples may not be later than
// limitMs (event time): a later sample is invalid, like a NaN. Invalid
// samples do not move the watermark, so one far-future sample cannot make
// every later good sample late.
func (e *engine) recordAt(offset, limitMs int64, samples []schemas.RawSample) recordResult {
	var r recordResult
	e.lastSeen = max(e.lastSeen, offset)
	r.rebuild = offset < e.restoredNext
	if e.rebuilding && !r.rebuild {
		e.endRebuild()
	}
	if !r.rebuild {
		e.noteRecord(offset)
	}
	maxTs := int64(math.MinInt64)
	for i := range samples {
		s := &samples[i]
		if s.TimestampMs > limitMs && !schemas.IsStale(s.Value) {
			if !r.rebuild {
				r.invalid = append(r.invalid, *s)
			}
			continue
		}
		switch e.st.add(s, offset, r.rebuild) {
		case outcomeAccepted:
			r.accepted++
		case outcomeStale:
			r.stale++
		case outcomeLate:
			r.late = append(r.late, *s)
		case outcomeInvalid:
			if !r.rebuild {
				r.invalid = append(r.invalid, *s)
			}
			continue
		}
		if !schemas.IsStale(s.Value) && !math.IsNaN(s.Value) {
			maxTs = max(maxTs, s.TimestampMs)
		}
	}
	r.advanced = e.st.observe(maxTs) && !r.rebuild
	return r
}

// undecodable accounts for a record that could not be decoded; it reports
// whether the record is new (to be dead-lettered) rather than rebuilt.
func (e *engine) undecodable(offset int64) bool {
	e.lastSeen = max(e.lastSeen, offset)
	if offset < e.restoredNext {
		return false
	}
	if e.rebuilding {
		e.endRebuild()
	}
	e.noteRecord(offset)
	return true
}

func (e *engine) noteRecord(offset int64) {
	if e.batchRecs == 0 {
		e.batchFirst = offset
	}
	e.batchRecs++
	e.next = offset + 1
}

// caughtUp ends the rebuild once every record below the committed
// position has been seen, so that an idle partition's windows can close.
func (e *engine) caughtUp() {
	if e.rebuilding && e.lastSeen >= e.restoredNext-1 {
		e.endRebuild()
	}
}

func (e *engine) endRebuild() {
	e.rebuilding = false
	e.st.finishRebuild(e.committed.revFloor)
}

// flush returns the windows to emit, the metadata and resume offset to
// commit with them, and whether there is anything to commit at all.
func (e *engine) flush() (windows []schemas.Window, meta commitMeta, resume int64, dirty bool) {
	if e.rebuilding {
		return nil, e.committed, 0, false
	}
	windows = e.st.flush()
	next := max(e.next, e.resumeFrom)
	resume = e.st.resumeOffset(next)
	meta = commitMeta{next: next, wm: e.st.wm, hasWM: e.st.hasWM, revFloor: e.st.revFloor}
	dirty = len(windows) > 0 || e.batchRecs > 0 || !e.hasMeta || meta != e.committed
	if !e.hasMeta && e.batchRecs == 0 && len(windows) == 0 {
		dirty = false
	}
	return windows, meta, resume, dirty
}

// commitDone records a successful commit of meta.
func (e *engine) commitDone(meta commitMeta) {
	e.committed, e.hasMeta = meta, true
	e.batchRecs = 0
}
