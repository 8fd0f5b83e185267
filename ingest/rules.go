package ingest

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/ebbflow/ebbflow/schemas"
)

// Value kinds a Rule can read a series as.
const (
	// KindGauge publishes the sample as is; the window value is the mean.
	KindGauge = "gauge"
	// KindCounter publishes the cumulative counter as is; the window
	// processor turns it into a per-series rate with reset handling.
	KindCounter = "counter"
	// KindRatio publishes Δmetric/Δdenominator×scale between two
	// consecutive samples of the same series (same labels apart from the
	// name) as a gauge, e.g. Triton's cumulative request duration over its
	// request count = mean latency. The result is published under the
	// rule's Record name with Kind "gauge".
	KindRatio = "ratio"
)

// Rule maps Prometheus series to one canonical signal of an entity. Every
// rule whose Metric and Matchers match a series produces a sample, so one
// series may feed several signals (a Triton failure counts towards qps and
// error_rate).
type Rule struct {
	// Name identifies the rule in logs and errors.
	Name string `yaml:"name"`
	// Metric is the exact metric name the rule reads.
	Metric string `yaml:"metric"`
	// Matchers are PromQL-style label matchers that must all hold:
	// name="v", name!="v", name=~"regex", name!~"regex" (anchored).
	Matchers []string `yaml:"matchers,omitempty"`
	// Signal is the canonical signal, e.g. qps, cpu, gpu_util.
	Signal string `yaml:"signal"`
	// Kind is gauge, counter or ratio.
	Kind string `yaml:"kind"`
	// Entity is the entity key template. {x} is replaced by the series'
	// label x; {a|b} takes the first non-empty of labels a and b. Three
	// names resolve specially when no label of that name exists:
	// {cluster} falls back to the configured cluster; {workload} reads
	// exported_deployment, exported_statefulset, exported_pod, deployment,
	// statefulset, workload (set by pod discovery from the pod's owner),
	// pod in that order, deriving the workload from a pod name
	// by stripping the ReplicaSet hash or StatefulSet ordinal; {node} reads
	// kubernetes_node or Hostname, else instance without its port. A
	// series that leaves a placeholder empty does not match the rule.
	Entity string `yaml:"entity"`
	// Denominator is the metric divided by, for kind ratio.
	Denominator string `yaml:"denominator,omitempty"`
	// Scale multiplies a ratio (e.g. 0.001 for µs → ms); 0 means 1.
	Scale float64 `yaml:"scale,omitempty"`
	// Record names the metric a ratio is published as.
	Record string `yaml:"record,omitempty"`
}

// DefaultRules returns the rules ingest ships with, for cAdvisor/kubelet,
// the DCGM exporter, Triton, node-exporter and kube-state-metrics. The
// simulated cluster of `ebbflow dev` exposes exactly these metric names.
func DefaultRules() []Rule {
	// exported_namespace comes first: when an exporter's own namespace
	// label collides with its scrape target's, the exporter's is the one
	// that describes the workload (kube-state-metrics, DCGM).
	svc := "svc/{cluster}/{exported_namespace|namespace}/{workload}"
	ksmSvc := svc
	node := "node/{cluster}/{node}"
	return []Rule{
		// Triton Inference Server (per model, per pod).
		{Name: "triton-qps-success", Metric: "nv_inference_request_success", Signal: "qps", Kind: KindCounter, Entity: svc},
		{Name: "triton-qps-failure", Metric: "nv_inference_request_failure", Signal: "qps", Kind: KindCounter, Entity: svc},
		{Name: "triton-errors", Metric: "nv_inference_request_failure", Signal: "error_rate", Kind: KindCounter, Entity: svc},
		{Name: "triton-latency", Metric: "nv_inference_request_duration_us", Denominator: "nv_inference_request_success",
			Scale: 0.001, Record: "ebbflow:nv_inference_request_latency:ms", Signal: "latency_p99", Kind: KindRatio, Entity: svc},
		{Name: "triton-queue-latency", Metric: "nv_inference_queue_duration_us", Denominator: "nv_inference_request_success",
			Scale: 0.001, Record: "ebbflow:nv_inference_queue_latency:ms", Signal: "queue_latency", Kind: KindRatio, Entity: svc},
		// cAdvisor via the kubelet: only real containers (the pod-level
		// cgroup has container="" and the pause container is "POD").
		{Name: "cadvisor-cpu", Metric: "container_cpu_usage_seconds_total", Matchers: []string{`container!=""`, `container!="POD"`},
			Signal: "cpu", Kind: KindCounter, Entity: svc},
		{Name: "cadvisor-memory", Metric: "container_memory_working_set_bytes", Matchers: []string{`container!=""`, `container!="POD"`},
			Signal: "memory", Kind: KindGauge, Entity: svc},
		// DCGM exporter: per GPU; attributed to the pod's service when the
		// exporter maps GPUs to pods (it then sets container, which no
		// scrape target label does), and always to the node.
		{Name: "dcgm-util-svc", Metric: "DCGM_FI_DEV_GPU_UTIL", Matchers: []string{`container!=""`}, Signal: "gpu_util", Kind: KindGauge, Entity: svc},
		{Name: "dcgm-util-node", Metric: "DCGM_FI_DEV_GPU_UTIL", Signal: "gpu_util", Kind: KindGauge, Entity: node},
		{Name: "dcgm-fb-svc", Metric: "DCGM_FI_DEV_FB_USED", Matchers: []string{`container!=""`}, Signal: "gpu_memory", Kind: KindGauge, Entity: svc},
		{Name: "dcgm-fb-node", Metric: "DCGM_FI_DEV_FB_USED", Signal: "gpu_memory", Kind: KindGauge, Entity: node},
		// kube-state-metrics (its own pod labels come as exported_*).
		{Name: "ksm-replicas", Metric: "kube_deployment_status_replicas_available", Signal: "replicas", Kind: KindGauge, Entity: ksmSvc},
		{Name: "ksm-pending", Metric: "kube_pod_status_phase", Matchers: []string{`phase="Pending"`}, Signal: "pending_pods", Kind: KindGauge, Entity: ksmSvc},
		// node-exporter.
		{Name: "node-cpu", Metric: "node_cpu_seconds_total", Matchers: []string{`mode!="idle"`, `mode!="iowait"`, `mode!="steal"`},
			Signal: "cpu", Kind: KindCounter, Entity: node},
		{Name: "node-memory-available", Metric: "node_memory_MemAvailable_bytes", Signal: "memory_available", Kind: KindGauge, Entity: node},
	}
}

// Validate names the first bad field of the rule.
func (r Rule) Validate() error {
	_, err := compileRule(r)
	return err
}

type matcher struct {
	name  string
	neg   bool
	value string
	re    *regexp.Regexp
}

func (m matcher) matches(v string) bool {
	var ok bool
	if m.re != nil {
		ok = m.re.MatchString(v)
	} else {
		ok = v == m.value
	}
	return ok != m.neg
}

var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)

func parseMatcher(s string) (matcher, error) {
	p := matcherRE.FindStringSubmatch(s)
	if p == nil {
		return matcher{}, fmt.Errorf("matcher %q: want name=\"v\", name!=\"v\", name=~\"re\" or name!~\"re\"", s)
	}
	val := strings.ReplaceAll(strings.ReplaceAll(p[3], `\"`, `"`), `\\`, `\`)
	m := matcher{name: p[1], neg: p[2][0] == '!', value: val}
	if p[2] == "=~" || p[2] == "!~" {
		re, err := regexp.Compile("^(?:" + val + ")$")
		if err != nil {
			return m, fmt.Errorf("matcher %q: %w", s, err)
		}
		m.re = re
	}
	return m, nil
}

// part is a literal or a placeholder of an entity template.
type part struct {
	lit   string
	alts  []string // label names, first non-empty wins
	isVar bool
}

type compiledRule struct {
	Rule
	idx      int
	matchers []matcher
	entity   []part
}

func compileRule(r Rule) (*compiledRule, error) {
	if r.Metric == "" {
		return nil, fmt.Errorf("rule %q: metric: required", r.Name)
	}
	if r.Signal == "" {
		return nil, fmt.Errorf("rule %q: signal: required", r.Name)
	}
	switch r.Kind {
	case KindGauge, KindCounter:
	case KindRatio:
		if r.Denominator == "" || r.Record == "" {
			return nil, fmt.Errorf("rule %q: denominator and record: required with kind ratio", r.Name)
		}
		if r.Denominator == r.Metric {
			return nil, fmt.Errorf("rule %q: denominator: must differ from metric", r.Name)
		}
	default:
		return nil, fmt.Errorf("rule %q: kind: %q is not gauge, counter or ratio", r.Name, r.Kind)
	}
	c := &compiledRule{Rule: r}
	if c.Scale == 0 {
		c.Scale = 1
	}
	for _, s := range r.Matchers {
		m, err := parseMatcher(s)
		if err != nil {
			return nil, fmt.Errorf("rule %q: matchers: %w", r.Name, err)
		}
		c.matchers = append(c.matchers, m)
	}
	t := r.Entity
	if t == "" {
		return nil, fmt.Errorf("rule %q: entity: required", r.Name)
	}
	for t != "" {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			c.entity = append(c.entity, part{lit: t})
			break
		}
		if i > 0 {
			c.entity = append(c.entity, part{lit: t[:i]})
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("rule %q: entity: unclosed { in %q", r.Name, r.Entity)
		}
		alts := strings.Split(t[i+1:i+j], "|")
		for _, a := range alts {
			if a == "" {
				return nil, fmt.Errorf("rule %q: entity: empty placeholder in %q", r.Name, r.Entity)
			}
		}
		c.entity = append(c.entity, part{alts: alts, isVar: true})
		t = t[i+j+1:]
	}
	return c, nil
}

// Unmatched policies.
const (
	UnmatchedDrop    = "drop"
	UnmatchedForward = "forward"
)

// Drop reasons, the values of the reason label of
// ebbflow_ingest_samples_dropped_total.
const (
	DropUnmatched        = "unmatched"
	DropEntityIncomplete = "entity_incomplete"
	DropNativeHistogram  = "native_histogram"
	DropBackpressure     = "backpressure"
	DropPublishFailed    = "publish_failed"
	DropScrapeParse      = "scrape_parse_error"
	// DropRepeated: a scraped sample that repeats its series' previous
	// one exactly (same explicit timestamp, same value): a target that
	// exposes timestamps scraped twice before it moved on. Prometheus
	// appends nothing for such a sample either.
	DropRepeated = "repeated"
)

// Mapper applies rules to series. It is safe for concurrent use: the only
// state it keeps is the previous sample of ratio series.
type Mapper struct {
	byMetric  map[string][]*compiledRule
	denoms    map[string][]*compiledRule
	cluster   string
	forward   bool
	mu        sync.Mutex
	ratio     map[string]*ratioState
	ratioSeen uint64
	keyBuf    []byte // ratio key scratch, guarded by mu
}

// NewMapper compiles rules. cluster fills {cluster} when a series has no
// cluster label; unmatched is UnmatchedDrop or UnmatchedForward (forwarded
// series are published under entity unmapped/<cluster>/<metric>).
func NewMapper(rules []Rule, cluster, unmatched string) (*Mapper, error) {
	m := &Mapper{byMetric: map[string][]*compiledRule{}, denoms: map[string][]*compiledRule{}, cluster: cluster, ratio: map[string]*ratioState{}}
	switch unmatched {
	case UnmatchedDrop, "":
	case UnmatchedForward:
		m.forward = true
	default:
		return nil, fmt.Errorf("unmatched: %q is not drop or forward", unmatched)
	}
	if cluster == "" {
		return nil, errors.New("cluster: required for {cluster} in entity templates")
	}
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		c.idx = i
		m.byMetric[r.Metric] = append(m.byMetric[r.Metric], c)
		if r.Kind == KindRatio {
			m.denoms[r.Denominator] = append(m.denoms[r.Denominator], c)
		}
	}
	return m, nil
}

func lookup(ls []schemas.Label, name string) string {
	for i := range ls {
		if ls[i].Name == name {
			return ls[i].Value
		}
	}
	return ""
}

func (m *Mapper) resolve(ls []schemas.Label, name string) string {
	if name != "workload" {
		if v := lookup(ls, name); v != "" {
			return v
		}
	}
	switch name {
	case "cluster":
		return m.cluster
	case "workload":
		// Labels the scraped exporter itself set (renamed exported_* when
		// they collide with target labels) describe the workload better
		// than the target's own labels, so they are tried first.
		for _, n := range [...]string{"exported_deployment", "exported_statefulset"} {
			if v := lookup(ls, n); v != "" {
				return v
			}
		}
		if v := lookup(ls, "exported_pod"); v != "" {
			return WorkloadFromPod(v)
		}
		for _, n := range [...]string{"deployment", "statefulset", "workload"} {
			if v := lookup(ls, n); v != "" {
				return v
			}
		}
		return WorkloadFromPod(lookup(ls, "pod"))
	case "node":
		for _, n := range [...]string{"kubernetes_node", "Hostname"} {
			if v := lookup(ls, n); v != "" {
				return v
			}
		}
		inst := lookup(ls, "instance")
		if i := strings.LastIndexByte(inst, ':'); i > 0 && !strings.HasSuffix(inst, "]") {
			inst = inst[:i]
		}
		return inst
	}
	return ""
}

// entity expands r's template into buf; ok is false when a placeholder is
// empty.
func (m *Mapper) entity(buf []byte, r *compiledRule, ls []schemas.Label) ([]byte, bool) {
	for _, p := range r.entity {
		if !p.isVar {
			buf = append(buf, p.lit...)
			continue
		}
		v := ""
		for _, a := range p.alts {
			if v = m.resolve(ls, a); v != "" {
				break
			}
		}
		if v == "" {
			return buf, false
		}
		buf = append(buf, v...)
	}
	return buf, true
}

const podHashAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func isHash(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(podHashAlphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

// WorkloadFromPod derives a workload name from a pod name as Kubernetes
// generates them: <deployment>-<replicaset hash>-<suffix>,
// <statefulset>-<ordinal>, <daemonset>-<suffix>. Other names are returned
// unchanged.
func WorkloadFromPod(pod string) string {
	// The workload is always a prefix of the pod name (everything before
	// its last one or two dashes), so no part is split out or joined: this
	// runs for every series a rule maps to a service.
	i := strings.LastIndexByte(pod, '-')
	if i < 0 {
		return pod
	}
	last := pod[i+1:]
	if isHash(last, 5, 5) {
		if j := strings.LastIndexByte(pod[:i], '-'); j >= 0 && isHash(pod[j+1:i], 6, 10) {
			return pod[:j]
		}
		return pod[:i]
	}
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return pod[:i]
	}
	return pod
}

func (r *compiledRule) matches(ls []schemas.Label) bool {
	for i := range r.matchers {
		if !r.matchers[i].matches(lookup(ls, r.matchers[i].name)) {
			return false
		}
	}
	return true
}

// ratioState holds the last complete pair of a ratio series.
type ratioState struct {
	numTs, denTs     int64
	num, den         float64
	prevTs           int64
	prevNum, prevDen float64
	havePrev         bool
	lastSeenGen      uint64
}

// Map applies the rules to one series (labels include __name__) and adds
// the resulting samples to b. Strings in b share memory with labels.
func (m *Mapper) Map(b *Batch, labels []schemas.Label, samples []Sample) {
	name := lookup(labels, "__name__")
	rules := m.byMetric[name]
	denoms := m.denoms[name]
	if len(rules) == 0 && len(denoms) == 0 {
		if m.forward {
			b.scratch = append(append(append(b.scratch[:0], "unmapped/"...), m.resolve(labels, "cluster")...), '/')
			b.scratch = append(b.scratch, name...)
			b.add(b.scratch, "", "untyped", name, stripName(labels), samples)
			return
		}
		b.drop(DropUnmatched, len(samples))
		return
	}
	var plain []schemas.Label
	produced, matched := false, false
	for _, r := range rules {
		if !r.matches(labels) {
			continue
		}
		matched = true
		var ok bool
		b.scratch, ok = m.entity(b.scratch[:0], r, labels)
		if !ok {
			continue
		}
		if plain == nil {
			plain = stripName(labels)
		}
		if r.Kind == KindRatio {
			m.ratioUpdate(b, r, b.scratch, plain, samples, true)
			produced = true
			continue
		}
		b.add(b.scratch, r.Signal, r.Kind, name, plain, samples)
		produced = true
	}
	for _, r := range denoms {
		if !r.matches(labels) {
			continue
		}
		matched = true
		var ok bool
		b.scratch, ok = m.entity(b.scratch[:0], r, labels)
		if !ok {
			continue
		}
		if plain == nil {
			plain = stripName(labels)
		}
		m.ratioUpdate(b, r, b.scratch, plain, samples, false)
		produced = true
	}
	switch {
	case produced:
	case matched:
		b.drop(DropEntityIncomplete, len(samples))
	default:
		b.drop(DropUnmatched, len(samples))
	}
}

func stripName(ls []schemas.Label) []schemas.Label {
	for i := range ls {
		if ls[i].Name == "__name__" {
			if i == 0 {
				return ls[1:]
			}
			out := make([]schemas.Label, 0, len(ls)-1)
			out = append(out, ls[:i]...)
			return append(out, ls[i+1:]...)
		}
	}
	return ls
}

// appendRatioKey appends the key of rule r's ratio state for series ls.
func appendRatioKey(dst []byte, r *compiledRule, ls []schemas.Label) []byte {
	dst = strconv.AppendInt(dst, int64(r.idx), 10)
	for _, l := range ls {
		dst = append(dst, 0)
		dst = append(dst, l.Name...)
		dst = append(dst, 0)
		dst = append(dst, l.Value...)
	}
	return dst
}

// ratioUpdate records numerator or denominator samples and emits the ratio
// for every timestamp at which both are known and a previous pair exists.
// Counter resets (a decrease) restart the pair without emitting.
func (m *Mapper) ratioUpdate(b *Batch, r *compiledRule, entity []byte, ls []schemas.Label, samples []Sample, isNum bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The lookup does not allocate; only a new series' key is copied.
	m.keyBuf = appendRatioKey(m.keyBuf[:0], r, ls)
	st := m.ratio[string(m.keyBuf)]
	if st == nil {
		st = &ratioState{numTs: math.MinInt64, denTs: math.MinInt64, prevTs: math.MinInt64}
		m.ratio[string(m.keyBuf)] = st
	}
	st.lastSeenGen = m.ratioSeen
	for _, s := range samples {
		if schemas.IsStale(s.Value) {
			continue
		}
		if isNum {
			st.numTs, st.num = s.TimestampMs, s.Value
		} else {
			st.denTs, st.den = s.TimestampMs, s.Value
		}
		if st.numTs != st.denTs || st.numTs <= st.prevTs {
			continue
		}
		if st.havePrev {
			dn, dd := st.num-st.prevNum, st.den-st.prevDen
			if dn >= 0 && dd > 0 {
				b.addOne(entity, r.Signal, KindGauge, r.Record, ls, Sample{TimestampMs: st.numTs, Value: dn / dd * r.Scale})
			}
		}
		st.prevTs, st.prevNum, st.prevDen, st.havePrev = st.numTs, st.num, st.den, true
	}
}

// ForgetIdle drops ratio state of series not seen since the previous call;
// Run calls it periodically so vanished pods do not hold memory.
func (m *Mapper) ForgetIdle() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, st := range m.ratio {
		if st.lastSeenGen < m.ratioSeen {
			delete(m.ratio, k)
			n++
		}
	}
	m.ratioSeen++
	return n
}
