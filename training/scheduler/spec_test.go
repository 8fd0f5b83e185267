package scheduler

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseGoodSpec(t *testing.T) {
	f, err := os.Open("testdata/job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Parse(f, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if s.GPUs.Count != 8 || s.GPUs.Model != "a100" || len(s.GPUs.Fallbacks) != 1 || s.ExpectedDuration != 6*time.Hour {
		t.Fatalf("parsed %+v", s)
	}
	if c, _ := s.CPUCores(); c != 16 {
		t.Errorf("cpu = %v", c)
	}
	if got := s.JobName(time.Date(2026, 11, 29, 19, 40, 5, 0, time.UTC)); got != "resnet50-imagenet-20261129194005" {
		t.Errorf("job name %q", got)
	}
}

func TestParseNamesTheBadField(t *testing.T) {
	good, err := os.ReadFile("testdata/job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, from, to string
		field          string
		line           int
	}{
		{"unknown field", "user: alice", "user: alice\ngpu_count: 3", "gpu_count", 3},
		{"unknown department", "department: research", "department: physics", "department", 1},
		{"unknown GPU model", "model: a100", "model: h100", "gpus.model", 8},
		{"unknown fallback", "[v100]", "[v100, tpu]", "gpus.fallbacks[1]", 9},
		{"duplicate fallback", "[v100]", "[a100]", "gpus.fallbacks[0]", 9},
		{"zero GPUs", "count: 8", "count: 0", "gpus.count", 7},
		{"bad cpu", `cpu: "16"`, `cpu: lots`, "cpu", 10},
		{"missing memory", "memory: 128Gi\n", "", "memory", 0},
		{"no duration", "expected_duration: 6h", "expected_duration: 0s", "expected_duration", 12},
		{"bad duration", "expected_duration: 6h", "expected_duration: soon", "expected_duration", 12},
		{"missing user", "user: alice\n", "", "user", 0},
		{"name without family", "department: research", "name: other-run\ndepartment: research", "name", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(string(good), c.from, c.to, 1)
			if doc == string(good) {
				t.Fatalf("edit %q did not apply", c.from)
			}
			_, err := Parse(strings.NewReader(doc), DefaultConfig())
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("want *SpecError, got %v", err)
			}
			if se.Field != c.field {
				t.Errorf("field = %q, want %q (%v)", se.Field, c.field, err)
			}
			if c.line != 0 && se.Line != c.line {
				t.Errorf("line = %d, want %d (%v)", se.Line, c.line, err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q does not name %s", err, c.field)
			}
		})
	}
}

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Departments[0].Quota["h100"] = 4
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "departments[0].quota.h100") {
		t.Fatalf("unknown model in quota: %v", err)
	}
}
