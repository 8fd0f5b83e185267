package deploytest

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/actuators/nodes"
	"github.com/ebbflow/ebbflow/forecast"
	"github.com/ebbflow/ebbflow/forecast/model"
	"github.com/ebbflow/ebbflow/inference/autoscale"
	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/ingest"
	"github.com/ebbflow/ebbflow/ingest/window"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/training/kueue"
	"github.com/ebbflow/ebbflow/training/mixing"
	"github.com/ebbflow/ebbflow/ui"
)

// recorder is a prometheus.Registerer that keeps the series names each
// collector handed to it describes; it registers nothing.
type recorder struct {
	names map[string]bool
	err   error
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	var suffixes []string
	switch c.(type) {
	case prometheus.Histogram, *prometheus.HistogramVec:
		suffixes = []string{"_bucket", "_sum", "_count"}
	case prometheus.Summary, *prometheus.SummaryVec:
		suffixes = []string{"", "_sum", "_count"}
	default:
		suffixes = []string{""}
	}
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			r.err = fmt.Errorf("no name in descriptor %s", d)
			continue
		}
		for _, s := range suffixes {
			r.names[m[1]+s] = true
		}
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return false }

// Registered returns every series name ebbflow's deployed components
// expose: each component's metrics, from the same constructors the
// components call at start (histograms as _bucket, _sum and _count), and
// the Go and process collectors of telemetry.NewRegistry every component
// serves. ebbflow_dev_* (only `ebbflow dev`) are not included.
func Registered() (map[string]bool, error) {
	r := &recorder{names: map[string]bool{}}
	ingest.NewMetrics(r)
	kueue.NewMetrics(r)
	model.NewRegistry(nil, "", nil, r)
	forecast.NewRetrainer(forecast.Config{}, nil, "", nil, nil, nil, r)
	for name, reg := range map[string]func(prometheus.Registerer) error{
		"window": window.RegisterMetrics, "forecast": forecast.RegisterMetrics, "autoscale": autoscale.RegisterMetrics,
		"servers": servers.RegisterMetrics, "mixing": mixing.RegisterMetrics, "actuators": actuators.RegisterMetrics,
		"ui": ui.RegisterMetrics,
		"actuators/nodes": func(reg prometheus.Registerer) error {
			_, err := nodes.New(nil, nodes.Config{}, nil, nil, reg)
			return err
		},
	} {
		if err := reg(r); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	// The Go and process collectors describe some series only when gathered.
	mfs, err := telemetry.NewRegistry().Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				r.names[mf.GetName()+s] = true
			}
		case dto.MetricType_SUMMARY:
			for _, s := range []string{"", "_sum", "_count"} {
				r.names[mf.GetName()+s] = true
			}
		default:
			r.names[mf.GetName()] = true
		}
	}
	return r.names, nil
}

// Sorted returns the names of a set in order.
func Sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
