package scheduler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// JobSpec is what a user submits: `ebbflow training submit FILE`.
type JobSpec struct {
	// Name is the Job's name; "" = <family>-<submission time>.
	Name       string `yaml:"name,omitempty" json:"name,omitempty"`
	Department string `yaml:"department" json:"department"`
	User       string `yaml:"user" json:"user"`
	// Family groups runs of the same training job; sizing reads the
	// family's past runs.
	Family  string   `yaml:"family" json:"family"`
	Image   string   `yaml:"image" json:"image"`
	Command []string `yaml:"command" json:"command"`
	GPUs    GPUSpec  `yaml:"gpus" json:"gpus"`
	// CPU and Memory are Kubernetes quantities per job ("8", "500m", "64Gi").
	CPU    string `yaml:"cpu" json:"cpu"`
	Memory string `yaml:"memory" json:"memory"`
	// ExpectedDuration is how long the job is expected to run ("6h").
	ExpectedDuration time.Duration `yaml:"expected_duration" json:"expected_duration"`
}

// GPUSpec asks for GPUs of a preferred model, with allowed fallbacks in
// order.
type GPUSpec struct {
	Count     int      `yaml:"count" json:"count"`
	Model     string   `yaml:"model" json:"model"`
	Fallbacks []string `yaml:"fallbacks,omitempty" json:"fallbacks,omitempty"`
}

// Models returns the preferred model followed by the fallbacks.
func (g GPUSpec) Models() []string { return append([]string{g.Model}, g.Fallbacks...) }

// SpecError is a bad job spec: Field is the YAML path ("gpus.model"), Line
// the line it is on (0 when unknown).
type SpecError struct {
	Field  string
	Line   int
	Reason string
}

func (e *SpecError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("job spec: line %d: %s: %s", e.Line, e.Field, e.Reason)
	}
	return fmt.Sprintf("job spec: %s: %s", e.Field, e.Reason)
}

// dnsLabel is what a Kubernetes object name part may be.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found`)

// Parse reads a job spec strictly (an unknown field is an error naming its
// line) and validates it against the configuration: an unknown department
// or GPU model is refused. Every error is a *SpecError naming the field.
func Parse(r io.Reader, cfg Config) (JobSpec, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return JobSpec{}, fmt.Errorf("job spec: read: %w", err)
	}
	var spec JobSpec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		if errors.Is(err, io.EOF) {
			return spec, &SpecError{Field: "department", Reason: "the spec is empty"}
		}
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			var line int
			fmt.Sscan(m[1], &line)
			return spec, &SpecError{Field: m[2], Line: line, Reason: "unknown field"}
		}
		return spec, &SpecError{Field: fieldOfYAMLError(err), Line: lineOfYAMLError(err), Reason: err.Error()}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root)
	if err := spec.Validate(cfg); err != nil {
		var se *SpecError
		if errors.As(err, &se) {
			se.Line = lineOf(&root, se.Field)
		}
		return spec, err
	}
	return spec, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func lineOfYAMLError(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		var n int
		fmt.Sscan(m[1], &n)
		return n
	}
	return 0
}

var yamlIntoField = regexp.MustCompile(`into (?:scheduler\.)?(\S+)`)

// fieldOfYAMLError names the field of a type error as well as yaml.v3 lets us.
func fieldOfYAMLError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "time.Duration"):
		return "expected_duration"
	case strings.Contains(msg, "GPUSpec"):
		return "gpus"
	}
	if m := yamlIntoField.FindStringSubmatch(msg); m != nil {
		return "(" + m[1] + ")"
	}
	return "(document)"
}

// lineOf finds the line of a dotted field path in a YAML document.
func lineOf(root *yaml.Node, field string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(field, ".") {
		name, _, _ := strings.Cut(part, "[")
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// Validate names the first bad field of the spec.
func (s JobSpec) Validate(cfg Config) error {
	bad := func(field, format string, a ...any) error {
		return &SpecError{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	if s.Name != "" && (len(s.Name) > 63 || !dnsLabel.MatchString(s.Name)) {
		return bad("name", "%q is not a DNS label (lower-case letters, digits, '-', at most 63)", s.Name)
	}
	if s.Department == "" {
		return bad("department", "required (one of %v)", cfg.DepartmentNames())
	}
	if _, ok := cfg.Department(s.Department); !ok {
		return bad("department", "unknown department %q (known: %v)", s.Department, cfg.DepartmentNames())
	}
	if s.User == "" {
		return bad("user", "required")
	}
	if s.Family == "" {
		return bad("family", "required: runs of the same job share a family, and sizing reads its history")
	}
	if len(s.Family) > 40 || !dnsLabel.MatchString(s.Family) {
		return bad("family", "%q is not a DNS label of at most 40 characters", s.Family)
	}
	if s.Name != "" && !strings.HasPrefix(s.Name, s.Family+"-") {
		return bad("name", "%q must start with the family and a dash (%q) so that sizing finds this run in history", s.Name, s.Family+"-")
	}
	if s.Image == "" {
		return bad("image", "required")
	}
	if len(s.Command) == 0 {
		return bad("command", "required: the container's command as a list")
	}
	if s.GPUs.Count < 1 {
		return bad("gpus.count", "%d: must be at least 1 (CPU-only jobs are not training jobs here)", s.GPUs.Count)
	}
	if s.GPUs.Model == "" {
		return bad("gpus.model", "required (one of %v)", cfg.ModelNames())
	}
	seen := map[string]bool{}
	for i, m := range s.GPUs.Models() {
		field := "gpus.model"
		if i > 0 {
			field = fmt.Sprintf("gpus.fallbacks[%d]", i-1)
		}
		if _, ok := cfg.GPUModel(m); !ok {
			return bad(field, "unknown GPU model %q (known: %v)", m, cfg.ModelNames())
		}
		if seen[m] {
			return bad(field, "GPU model %q is listed twice", m)
		}
		seen[m] = true
	}
	if _, err := s.CPUCores(); err != nil {
		return bad("cpu", "%v", err)
	}
	if _, err := s.MemoryBytes(); err != nil {
		return bad("memory", "%v", err)
	}
	if s.ExpectedDuration <= 0 {
		return bad("expected_duration", "required and positive (e.g. 6h)")
	}
	return nil
}

// CPUCores parses CPU as cores.
func (s JobSpec) CPUCores() (float64, error) {
	return positiveQuantity(s.CPU)
}

// MemoryBytes parses Memory as bytes.
func (s JobSpec) MemoryBytes() (float64, error) {
	return positiveQuantity(s.Memory)
}

func positiveQuantity(v string) (float64, error) {
	if v == "" {
		return 0, errors.New("required (a Kubernetes quantity such as 8, 500m or 64Gi)")
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a Kubernetes quantity: %w", v, err)
	}
	f := q.AsApproximateFloat64()
	if f <= 0 {
		return 0, fmt.Errorf("%q must be positive", v)
	}
	return f, nil
}

// JobName returns the spec's name, or <family>-<YYYYMMDDhhmmss> at now.
// The family prefix is how ReadFamilyRuns finds a family's runs in history.
func (s JobSpec) JobName(now time.Time) string {
	if s.Name != "" {
		return s.Name
	}
	return s.Family + "-" + now.UTC().Format("20060102150405")
}
