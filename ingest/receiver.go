package ingest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/IBM/sarama"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/snappy"

	"github.com/ebbflow/ebbflow/schemas"
)

// Remote-write protobuf message names, as the Content-Type proto parameter
// carries them.
const (
	ProtoMsgV1 = "prometheus.WriteRequest"
	ProtoMsgV2 = "io.prometheus.write.v2.Request"
)

// Sink receives mapped batches; *Publisher is the production Sink.
type Sink interface {
	// Publish returns nil once every sample of b is durably written.
	Publish(ctx context.Context, b *Batch, wait time.Duration) error
	// RetryAfter is the back-off to advise with 429 and 503.
	RetryAfter() time.Duration
}

// Receiver is the remote_write HTTP handler. It is safe for concurrent
// use; each request is decoded, mapped and published independently, and
// answered 204 only after the sink has written all its samples.
type Receiver struct {
	mapper  *Mapper
	sink    Sink
	m       *Metrics
	log     *slog.Logger
	maxBody int64
	wait    time.Duration
	auth    func(*http.Request) bool
	states  sync.Pool
	meta    *MetadataWriter
}

// SetMetadataWriter makes the receiver hand the metric metadata of each
// request it accepts to mw (see MetadataWriter).
func (rc *Receiver) SetMetadataWriter(mw *MetadataWriter) { rc.meta = mw }

type rwState struct {
	compressed []byte
	body       []byte
	req        WriteRequest
	batch      *Batch
	digestBuf  []byte
}

// NewReceiver returns a receiver publishing to sink. auth may be nil (no
// authentication); see Authenticator.
func NewReceiver(mapper *Mapper, sink Sink, cfg RemoteWriteConfig, m *Metrics, log *slog.Logger, auth func(*http.Request) bool) *Receiver {
	r := &Receiver{mapper: mapper, sink: sink, m: m, log: log, maxBody: cfg.MaxRequestBytes, wait: cfg.BackpressureWait, auth: auth}
	r.states.New = func() any { return &rwState{batch: NewBatch()} }
	return r
}

// Authenticator returns the check NewReceiver uses for the configured
// bearer token or basic auth (nil when neither is set). Secrets are read
// from their files once.
func Authenticator(token, user, password string) func(*http.Request) bool {
	switch {
	case token != "":
		want := []byte("Bearer " + token)
		return func(r *http.Request) bool {
			return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1
		}
	case user != "":
		return func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1 &&
				subtle.ConstantTimeCompare([]byte(p), []byte(password)) == 1
		}
	}
	return nil
}

func (rc *Receiver) fail(w http.ResponseWriter, code int, msg string) {
	rc.m.Requests.WithLabelValues(strconv.Itoa(code)).Inc()
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(rc.sink.RetryAfter().Round(time.Second)/time.Second))))
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ebbflow ingest", Basic realm="ebbflow ingest"`)
	}
	http.Error(w, msg, code)
}

// protoVersion returns 1 or 2 for an acceptable Content-Type, or 0.
func protoVersion(ct string) int {
	if ct == "" {
		return 1 // Prometheus before 2.x sent none; the spec allows treating it as 1.0.
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-protobuf" {
		return 0
	}
	switch params["proto"] {
	case "", ProtoMsgV1:
		return 1
	case ProtoMsgV2:
		return 2
	}
	return 0
}

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rc.fail(w, http.StatusMethodNotAllowed, "remote_write takes POST")
		return
	}
	if rc.auth != nil && !rc.auth(r) {
		rc.fail(w, http.StatusUnauthorized, "missing or wrong credentials")
		return
	}
	ver := protoVersion(r.Header.Get("Content-Type"))
	if ver == 0 {
		rc.fail(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q: want application/x-protobuf with proto=%s or proto=%s", r.Header.Get("Content-Type"), ProtoMsgV1, ProtoMsgV2))
		return
	}
	if enc := r.Header.Get("Content-Encoding"); !strings.EqualFold(enc, "snappy") {
		rc.fail(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q: want snappy", enc))
		return
	}
	st := rc.states.Get().(*rwState)
	defer rc.states.Put(st)
	st.batch.Reset()
	code, msg, written := rc.handle(r.Context(), r.Body, ver, st)
	if code != http.StatusNoContent {
		rc.fail(w, code, msg)
		return
	}
	// Metadata of accepted requests only; Observe copies what it keeps
	// before st (and the body its strings point into) is reused.
	if ver == 2 {
		rc.meta.Observe(schemas.MetadataSourceRW2, st.req.Metadata)
	} else {
		rc.meta.Observe(schemas.MetadataSourceRW1, st.req.Metadata)
	}
	if ver == 2 {
		h := w.Header()
		h.Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(written))
		h.Set("X-Prometheus-Remote-Write-Histograms-Written", "0")
		h.Set("X-Prometheus-Remote-Write-Exemplars-Written", "0")
	}
	rc.m.Requests.WithLabelValues("204").Inc()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *Receiver) handle(ctx context.Context, body io.Reader, ver int, st *rwState) (code int, msg string, written int) {
	var err error
	st.compressed, err = readAll(st.compressed[:0], io.LimitReader(body, rc.maxBody+1))
	if err != nil {
		return http.StatusBadRequest, "reading body: " + err.Error(), 0
	}
	if int64(len(st.compressed)) > rc.maxBody {
		rc.m.RejectedRequests.WithLabelValues(RejectBodyTooLarge).Inc()
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than remote_write.max_request_bytes (%d bytes)", rc.maxBody), 0
	}
	code, msg, err = rc.decodeAndMap(ver, st)
	if err != nil {
		if code == http.StatusRequestEntityTooLarge {
			rc.m.RejectedRequests.WithLabelValues(RejectBodyTooLarge).Inc()
		}
		return code, msg, 0
	}
	n := st.req.NumSamples()
	if err := rc.sink.Publish(ctx, st.batch, rc.wait); err != nil {
		rc.m.dropped(st.batch.Dropped)
		switch {
		case errors.Is(err, ErrBackpressure):
			rc.m.SamplesDropped.WithLabelValues(DropBackpressure).Add(float64(st.batch.Len()))
			return http.StatusTooManyRequests, "ingest is at capacity, retry later", 0
		case errors.Is(err, ErrRecordTooLarge):
			rc.m.RejectedRequests.WithLabelValues(RejectRecordTooLarge).Inc()
			rc.m.SamplesDropped.WithLabelValues(DropPublishFailed).Add(float64(st.batch.Len()))
			return http.StatusRequestEntityTooLarge, err.Error(), 0
		case errors.Is(err, ErrTooLarge):
			rc.m.RejectedRequests.WithLabelValues(RejectBufferTooLarge).Inc()
			rc.m.SamplesDropped.WithLabelValues(DropPublishFailed).Add(float64(st.batch.Len()))
			return http.StatusRequestEntityTooLarge, "publish.max_buffer_bytes: " + err.Error(), 0
		case errors.Is(err, sarama.ErrMessageSizeTooLarge):
			// Records are cut under publish.max_message_bytes, so the
			// broker's (or topic's) limit is lower: resending cannot help.
			rc.m.RejectedRequests.WithLabelValues(RejectBrokerTooLarge).Inc()
			rc.m.SamplesDropped.WithLabelValues(DropPublishFailed).Add(float64(st.batch.Len()))
			rc.log.Warn("remote_write: Kafka refused a record as too large; lower ingest.publish.max_message_bytes to the broker's message.max.bytes", "err", err)
			return http.StatusRequestEntityTooLarge, "kafka refused the records as larger than its message.max.bytes (set ingest.publish.max_message_bytes below it): " + err.Error(), 0
		default:
			rc.m.SamplesDropped.WithLabelValues(DropPublishFailed).Add(float64(st.batch.Len()))
			rc.log.Warn("remote_write: publish failed; asking the sender to retry", "samples", st.batch.Len(), "err", err)
			return http.StatusServiceUnavailable, "kafka unavailable, retry later: " + err.Error(), 0
		}
	}
	rc.m.dropped(st.batch.Dropped)
	return http.StatusNoContent, "", n
}

// decodeAndMap snappy-decodes and parses st.compressed, and maps the
// series into st.batch: the whole CPU path of a request short of
// publishing.
func (rc *Receiver) decodeAndMap(ver int, st *rwState) (int, string, error) {
	dl, err := snappy.DecodedLen(st.compressed)
	if err != nil {
		return http.StatusBadRequest, "snappy: " + err.Error(), err
	}
	if int64(dl) > rc.maxBody {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("decompressed body of %d bytes is larger than remote_write.max_request_bytes (%d)", dl, rc.maxBody), ErrTooLarge
	}
	// The decoded strings point into st.body; st returns to the pool only
	// after Publish has encoded (copied) every sample.
	if cap(st.body) < dl {
		st.body = make([]byte, dl)
	}
	st.body, err = snappy.Decode(st.body[:cap(st.body)], st.compressed)
	if err != nil {
		return http.StatusBadRequest, "snappy: " + err.Error(), err
	}
	if ver == 2 {
		err = DecodeWriteRequestV2(st.body, &st.req)
	} else {
		err = DecodeWriteRequestV1(st.body, &st.req)
	}
	if err != nil {
		return http.StatusBadRequest, err.Error(), err
	}
	rc.m.SamplesReceived.WithLabelValues("remote_write").Add(float64(st.req.NumSamples()))
	var exemplars int
	for i := range st.req.Series {
		exemplars += st.req.Series[i].Exemplars
	}
	rc.m.Exemplars.Add(float64(exemplars))
	st.batch.Digest, st.batch.HasDigest = requestDigest(&st.req, &st.digestBuf), true
	for i := range st.req.Series {
		s := &st.req.Series[i]
		st.batch.drop(DropNativeHistogram, s.Histograms)
		rc.mapper.Map(st.batch, s.Labels, s.Samples)
	}
	return 0, "", nil
}

func readAll(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}
