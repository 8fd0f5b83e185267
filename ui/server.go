package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Server serves the web UI from a Store and Sources.
type Server struct {
	cfg   Config
	store *Store
	src   Sources
	log   *slog.Logger
	token string
	key   []byte // signs the forms' CSRF tokens
	tmpl  *template.Template
	m     *metrics
	now   func() time.Time
}

type metrics struct {
	requests *prometheus.CounterVec
	refused  *prometheus.CounterVec
	streams  prometheus.Gauge
	forms    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ui_requests_total",
			Help: "Web UI requests served, by page."}, []string{"page"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ui_refused_total",
			Help: "Web UI requests refused, by reason (token, csrf, origin, method)."}, []string{"reason"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_ui_event_streams",
			Help: "Open server-sent event streams."}),
		forms: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_ui_form_submissions_total",
			Help: "Form submissions that reached their action, by form and result (ok, invalid)."}, []string{"form", "result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.refused, m.streams, m.forms} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("ui: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// NewServer builds the UI's handler state; reg may be nil.
func NewServer(cfg Config, store *Store, src Sources, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ui.%w", err)
	}
	tok, err := cfg.token()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	t, err := template.New("ui").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, store: store, src: src, log: log, token: tok, key: key, tmpl: t, m: m, now: time.Now}, nil
}

// Handler returns the UI's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.page("overview", s.overview))
	mux.HandleFunc("GET /service", s.page("service", s.service))
	mux.HandleFunc("GET /nodes", s.page("nodes", s.nodes))
	mux.HandleFunc("GET /training", s.page("training", s.training))
	mux.HandleFunc("GET /actions", s.page("actions", s.actions))
	mux.HandleFunc("GET /forms/training", s.page("form", s.trainingForm))
	mux.HandleFunc("GET /forms/model", s.page("form", s.modelForm))
	mux.HandleFunc("POST /forms/training", s.post("training", s.trainingForm))
	mux.HandleFunc("POST /forms/model", s.post("model", s.modelForm))
	mux.HandleFunc("GET /fragment/{name}", s.fragment)
	mux.HandleFunc("GET /events", s.events)
	return s.secure(mux)
}

// secure sets the security headers and, when configured, requires the
// token on every request but the static assets.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		if s.cfg.RequireTokenForRead && !strings.HasPrefix(r.URL.Path, "/static/") && r.Method != http.MethodPost {
			if !s.bearerOK(r) {
				s.m.refused.WithLabelValues("token").Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="ebbflow"`)
				http.Error(w, "ui: this page needs the bearer token (ui.require_token_for_read): send Authorization: Bearer <token>", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) bearerOK(r *http.Request) bool {
	a := r.Header.Get("Authorization")
	t, ok := strings.CutPrefix(a, "Bearer ")
	return ok && s.tokenEqual(t)
}

func (s *Server) tokenEqual(t string) bool {
	return s.token != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(t)), []byte(s.token)) == 1
}

// page is the data of one page (or fragment) and its template name.
type pageData struct {
	Title  string
	Nav    string
	Now    time.Time
	Live   bool
	Secure bool // TLS
	Data   any
}

// builder computes a page's data from the request.
type builder func(r *http.Request) (any, int, error)

func (s *Server) page(name string, b builder) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.m.requests.WithLabelValues(name).Inc()
		data, code, err := b(r)
		if err != nil {
			http.Error(w, err.Error(), code)
			return
		}
		s.render(w, code, name, data)
	}
}

func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	pd := pageData{Title: titleOf(data), Nav: name, Now: s.now().UTC(), Live: true, Secure: s.cfg.TLSEnabled(), Data: data}
	var b strings.Builder
	if err := s.tmpl.ExecuteTemplate(&b, name, pd); err != nil {
		s.log.Error("ui: render", "page", name, "err", err)
		http.Error(w, "ui: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, b.String())
}

type titled interface{ PageTitle() string }

func titleOf(d any) string {
	if t, ok := d.(titled); ok {
		return t.PageTitle()
	}
	return "ebbflow"
}

// fragments are the live parts of the pages: name → builder and template.
func (s *Server) fragments() map[string]struct {
	b    builder
	tmpl string
} {
	type f = struct {
		b    builder
		tmpl string
	}
	return map[string]f{
		"overview":      {s.overview, "overview-body"},
		"service":       {s.service, "service-body"},
		"nodes":         {s.nodes, "nodes-body"},
		"training":      {s.training, "training-body"},
		"actions":       {s.actions, "actions-body"},
		"overview-head": {s.overview, "overview-status"},
	}
}

// fragment serves the live part of a page with the page's query, for the
// event stream's script to swap in.
func (s *Server) fragment(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f, ok := s.fragments()[name]
	if !ok {
		http.Error(w, "ui: no fragment "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	s.m.requests.WithLabelValues("fragment-" + name).Inc()
	data, code, err := f.b(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	s.render(w, code, f.tmpl, data)
}

// events is the server-sent event stream: one "update" event per change
// in the store (kind, entity or group), a comment every 15 s.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "ui: streaming unsupported", http.StatusInternalServerError)
		return
	}
	s.m.requests.WithLabelValues("events").Inc()
	s.m.streams.Inc()
	defer s.m.streams.Dec()
	ch, cancel := s.store.Subscribe()
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "retry: 2000\n: ebbflow ui events\n\n")
	fl.Flush()
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			io.WriteString(w, ": beat\n\n")
		case u := <-ch:
			b, _ := json.Marshal(u)
			fmt.Fprintf(w, "id: %d\nevent: update\ndata: %s\n\n", u.Seq, b)
		}
		fl.Flush()
	}
}

// post guards a form's POST: same origin, a valid CSRF token for the form
// (bound to it, signed, one hour), and the bearer token (header or field).
// A refusal re-renders nothing: it names what was wrong.
func (s *Server) post(form string, b builder) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.m.requests.WithLabelValues("post-" + form).Inc()
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "ui: bad form: "+err.Error(), http.StatusBadRequest)
			return
		}
		if reason, err := s.checkOrigin(r); err != nil {
			s.m.refused.WithLabelValues(reason).Inc()
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if s.token == "" {
			s.m.refused.WithLabelValues("token").Inc()
			http.Error(w, "ui: changes are disabled: no ui.token or ui.token_file is configured", http.StatusForbidden)
			return
		}
		if !s.bearerOK(r) && !s.tokenEqual(r.PostForm.Get("token")) {
			s.m.refused.WithLabelValues("token").Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="ebbflow"`)
			http.Error(w, "ui: this form changes the cluster: it needs the bearer token (Authorization: Bearer <token>, or the form's token field)", http.StatusUnauthorized)
			return
		}
		if !s.checkCSRF(form, r.PostForm.Get("csrf")) {
			s.m.refused.WithLabelValues("csrf").Inc()
			http.Error(w, "ui: the form's CSRF token is missing, expired or for another form: reload the form and submit again", http.StatusForbidden)
			return
		}
		data, code, err := b(r)
		if err != nil {
			http.Error(w, err.Error(), code)
			return
		}
		s.render(w, code, "form", data)
	}
}

// checkOrigin refuses a POST whose Origin (or, without one, Referer) is
// another site. A request with neither (a non-browser client) passes: it
// still needs the bearer token and the CSRF token.
func (s *Server) checkOrigin(r *http.Request) (string, error) {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return "", nil
	}
	u, err := url.Parse(src)
	if err != nil || src == "null" || !strings.EqualFold(u.Host, r.Host) {
		return "origin", fmt.Errorf("ui: cross-origin form submission refused (origin %q, this server %q)", src, r.Host)
	}
	return "", nil
}

// csrfToken is form|unix-seconds|hmac, base64url.
func (s *Server) csrfToken(form string) string {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(form + "|" + ts))
	return ts + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Server) checkCSRF(form, tok string) bool {
	ts, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	age := s.now().Sub(time.Unix(sec, 0))
	if age < -time.Minute || age > time.Hour {
		return false
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(form + "|" + ts))
	want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(sig), []byte(want))
}

// RegisterMetrics registers the UI's metrics (ebbflow_ui_*) on reg, as
// Run does; for checks of dashboards against the real metric names.
func RegisterMetrics(reg prometheus.Registerer) error {
	_, err := newMetrics(reg)
	return err
}
