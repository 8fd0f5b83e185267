package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCounterValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"topic", "code"})
	reg.MustRegister(c)
	c.WithLabelValues("a", "200").Add(3)
	c.WithLabelValues("a", "503").Add(4)
	c.WithLabelValues("b", "200").Add(5)
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{nil, 12},
		{[]string{"topic", "a"}, 7},
		{[]string{"topic", "a", "code", "503"}, 4},
		{[]string{"code", "200"}, 8},
		{[]string{"topic", "c"}, 0},
	} {
		got, err := CounterValue(reg, "x_total", tc.labels...)
		if err != nil || got != tc.want {
			t.Fatalf("CounterValue(%v) = %v, %v; want %v", tc.labels, got, err, tc.want)
		}
	}
	if got, err := CounterValue(reg, "missing_total"); err != nil || got != 0 {
		t.Fatalf("missing family: %v, %v", got, err)
	}
	if _, err := CounterValue(reg, "x_total", "topic"); err == nil {
		t.Fatal("odd label list accepted")
	}
}
