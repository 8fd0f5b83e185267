package model

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbflow/ebbflow/internal/history"
)

// Set is the models in use, by signal. A Set is never modified after it
// is published, so readers need no lock.
type Set struct {
	BySignal map[string]*Model
}

// For returns the model of a signal, or nil.
func (s *Set) For(signal string) *Model {
	if s == nil {
		return nil
	}
	return s.BySignal[signal]
}

// Registry keeps the current model Set and reloads it from a directory of
// a history.FS (HDFS or local). A reload reads every new or changed
// *.model.json(.gz) at the top of the directory (never its subdirectories,
// where rejected/ and versions/ live), refuses broken ones and ones the
// promotion gate did not promote (logged, counted, the previous model of
// that signal keeps serving, or the baseline), and swaps the whole Set
// atomically. It is safe for concurrent use.
type Registry struct {
	fsys history.FS
	dir  string
	log  *slog.Logger

	cur    atomic.Pointer[Set]
	mu     sync.Mutex // serialises reloads
	stamps map[string]string
	byFile map[string]*Model
	seen   map[string]bool // signals any model file was for

	loads, errors prometheus.Counter
	loaded        prometheus.Gauge
	errorsByFile  *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	promoted      *prometheus.GaugeVec
}

// NewRegistry returns a registry over dir of fsys. Call Reload once (or
// Run) to load the models.
func NewRegistry(fsys history.FS, dir string, log *slog.Logger, reg prometheus.Registerer) *Registry {
	if log == nil {
		log = slog.Default()
	}
	r := &Registry{fsys: fsys, dir: dir, log: log, stamps: map[string]string{}, byFile: map[string]*Model{}, seen: map[string]bool{}}
	r.loads = prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_forecast_model_loads_total", Help: "Model files loaded successfully."})
	r.errors = prometheus.NewCounter(prometheus.CounterOpts{Name: "ebbflow_forecast_model_load_errors_total", Help: "Model files refused (unreadable, not XGBoost JSON, unsupported feature spec); the previous model keeps serving."})
	r.errorsByFile = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_model_file_errors_total", Help: "Refused model files by file name."}, []string{"file"})
	r.loaded = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebbflow_forecast_models", Help: "Models in use."})
	r.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebbflow_forecast_models_rejected_total", Help: "Model files the registry refused because the promotion gate did not promote them (verdict rejected, or no verdict), by signal and reason."}, []string{"signal", "reason"})
	r.promoted = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebbflow_forecast_model_promoted", Help: "1 when the signal is served by a model the promotion gate promoted, 0 when it falls back to a baseline."}, []string{"signal"})
	if reg != nil {
		reg.MustRegister(r.loads, r.errors, r.errorsByFile, r.loaded, r.rejected, r.promoted)
	}
	r.cur.Store(&Set{BySignal: map[string]*Model{}})
	return r
}

// Current returns the Set in use.
func (r *Registry) Current() *Set { return r.cur.Load() }

// Reload scans the directory once. It returns the first refusal (after
// applying every good file), so callers can report it; the Set in use is
// updated either way.
func (r *Registry) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	infos, err := r.fsys.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("model: list %s: %w", r.dir, err)
	}
	var firstErr error
	present := map[string]bool{}
	for _, fi := range infos {
		name := fi.Name()
		if fi.IsDir() || !(strings.HasSuffix(name, Suffix) || strings.HasSuffix(name, SuffixGz)) {
			continue
		}
		present[name] = true
		stamp := fmt.Sprintf("%d|%d", fi.Size(), fi.ModTime().UnixNano())
		if r.stamps[name] == stamp {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m, err := r.load(path.Join(r.dir, name), name, fi)
		r.stamps[name] = stamp // a broken file is not retried until it changes
		if err == nil && !m.Gate.Promoted() {
			reason := m.GateReason
			if m.GateErr == nil {
				err = fmt.Errorf("model %s: refused: the promotion gate rejected it (%s: %s)", name, m.Gate.Reason, m.Gate.Detail)
			} else {
				err = fmt.Errorf("model %s: refused: %w", name, m.GateErr)
			}
			r.rejected.WithLabelValues(m.Signal(), string(reason)).Inc()
			r.seen[m.Signal()] = true
		}
		if err != nil {
			r.errors.Inc()
			r.errorsByFile.WithLabelValues(name).Inc()
			r.log.Error("forecast model refused; the previous model keeps serving", "file", path.Join(r.dir, name), "err", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		r.loads.Inc()
		r.byFile[name] = m
		r.log.Info("forecast model loaded", "file", name, "signal", m.Signal(), "model", m.ID, "version", m.Version, "feature_spec", m.Spec.Version, "trees", m.XGB.NumTrees())
	}
	for name := range r.byFile {
		if !present[name] {
			r.log.Warn("forecast model file removed; its signal falls back to baselines", "file", name)
			delete(r.byFile, name)
			delete(r.stamps, name)
		}
	}
	names := make([]string, 0, len(r.byFile))
	for n := range r.byFile {
		names = append(names, n)
	}
	sort.Strings(names)
	set := &Set{BySignal: map[string]*Model{}}
	for _, n := range names { // later names win for the same signal
		set.BySignal[r.byFile[n].Signal()] = r.byFile[n]
	}
	r.loaded.Set(float64(len(set.BySignal)))
	for _, m := range r.byFile {
		r.seen[m.Signal()] = true
	}
	for sig := range r.seen {
		v := 0.0
		if set.BySignal[sig] != nil {
			v = 1
		}
		r.promoted.WithLabelValues(sig).Set(v)
	}
	r.cur.Store(set)
	return firstErr
}

func (r *Registry) load(p, name string, _ fs.FileInfo) (*Model, error) {
	f, err := r.fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", p, err)
	}
	return LoadBytes(b, name)
}

// Run reloads every interval until ctx ends.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Reload(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("forecast model reload", "dir", r.dir, "err", err)
			}
		}
	}
}
