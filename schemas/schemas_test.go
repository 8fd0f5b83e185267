package schemas

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// sampleEvents is one value of every event type, as the components build them.
func sampleEvents() []Event {
	target := Target{Cluster: "c1", Namespace: "shop", Kind: "Deployment", Name: "web"}
	return []Event{
		Window{Entity: "svc/c1/shop/web", Signal: SignalQPS, Kind: KindCounter, SizeS: 60, StartMs: 1_700_000_000_000, EndMs: 1_700_000_060_000,
			Count: 12, Sum: 10, Min: 0.5, Max: 2, Mean: 0.83, Last: 1, P50: 0.8, P95: 1.9, P99: 2, Rate: ptr(41.5)},
		Window{Entity: "node/c1/n7", Signal: SignalGPUUtil, Kind: KindGauge, SizeS: 15, StartMs: 0, EndMs: 15_000, Revision: 2, Count: 1, Sum: 1, Min: 1, Max: 1, Mean: 1, Last: 1, P50: 1, P95: 1, P99: 1},
		Forecast{ID: "f1", Entity: "svc/c1/shop/web", Signal: SignalQPS, OriginMs: 1_700_000_060_000, StepS: 60, Observed: 41.5,
			Horizons: []HorizonValue{{Minutes: 1, AtMs: 1_700_000_120_000, Value: 42}, {Minutes: 5, AtMs: 1_700_000_360_000, Value: 50}},
			Model:    ModelRef{ID: "qps-h1-5", Version: "2026-11-01", FeatureSpec: "v1"}},
		Forecast{ID: "f2", Entity: "svc/c1/shop/web", Signal: SignalCPU, OriginMs: 1, StepS: 60, Observed: 3,
			Horizons: []HorizonValue{{Minutes: 1, AtMs: 60_001, Value: 3}}, Fallback: FallbackLastValue, FallbackReason: "no model for signal cpu"},
		ScaleDecision{ID: "d1", Kind: DecisionScale, Seq: 7, Target: target, Entity: "svc/c1/shop/web", AtMs: 10, ExpiresMs: 70, From: 3, To: 5, DecidedBy: "decide/0",
			Reason: Reason{Summary: "qps forecast 180/s at 3 min needs 5 replicas", Formula: "ceil(0.9/0.6×3)=5", HorizonMinutes: 3,
				Demands: []SignalDemand{{Signal: SignalQPS, Current: 0.7, Predicted: 0.9, Used: 0.9, ExpectRate: 0.6, Desired: 5, Source: "forecast"}},
				Inputs:  map[string]float64{"latency_p99_ms": 80}}},
		InferenceDecision{ID: "inf-1", Kind: DecisionInference, Seq: 1_700_000_000_000, Target: Target{Cluster: "c1", Namespace: "ebbflow-serving", Kind: "Deployment", Name: "resnet50"},
			Action: InferenceUpdate, Model: ModelServer{Name: "resnet50", Version: 3, Server: "triton", Format: "onnx", Device: "a100", Precision: "int8"},
			Spec: "name: resnet50\nversion: 3\n", SpecDigest: strings.Repeat("ab", 32), AtMs: 10, ExpiresMs: 600_010, DecidedBy: "/ebbflow/servers",
			Reason: InferenceReason{Summary: "resnet50 v2 → v3: spec changed in the model store", Trigger: TriggerChanged, StorePath: "models/resnet50.yaml",
				FromVersion: 2, ToVersion: 3, FromDigest: strings.Repeat("cd", 32), ToDigest: strings.Repeat("ab", 32)}},
		InferenceDecision{ID: "inf-2", Kind: DecisionInference, Seq: 1_700_000_000_001, Target: Target{Cluster: "c1", Namespace: "ebbflow-serving", Kind: "Deployment", Name: "ocr"},
			Action: InferenceRetire, Model: ModelServer{Name: "ocr", Version: 5}, AtMs: 11, ExpiresMs: 600_011, DecidedBy: "/ebbflow/servers",
			Reason: InferenceReason{Summary: "ocr v5 removed from the model store", Trigger: TriggerRemoved, StorePath: "models/ocr.yaml", FromVersion: 5}},
		Action{ID: "a1", DecisionID: "d1", DecisionKind: DecisionScale, Seq: 7, Target: target, Outcome: OutcomeApplied, Reason: "scaled 3→5", AtMs: 11, Attempts: 1, Actuator: "act-0", Before: ptr[int32](3), After: ptr[int32](5)},
		Action{ID: "a2", DecisionID: "d0", DecisionKind: DecisionScale, Seq: 6, Target: target, Outcome: OutcomeSkipped, Reason: "stale: seq 6 ≤ last applied 7", AtMs: 12, Actuator: "act-0"},
		Alert{ID: "d1/scale_ratio", Severity: SeverityInfo, Kind: AlertScaleRatio, Summary: "c1/shop/Deployment/web scaled 3 → 5 (67%)",
			Target: &target, Entity: "svc/c1/shop/web", DecisionID: "d1", AtMs: 10, Source: "/ebbflow/decide", Values: map[string]float64{"from": 3, "to": 5}},
		NodesDecision{ID: "n1", Kind: DecisionNodes, Seq: 3, Target: NodeGroupTarget("c1", "t4"), Group: "t4", AtMs: 20, ExpiresMs: 320,
			Direction: "to-online", DecidedBy: "/ebbflow/mixing",
			Nodes: []NodeFlip{{Node: "n7", From: "offline", To: "online", Why: "least work lost: 1 training pod(s), 4m0s since checkpoint", TrainingPods: 1, LostWorkS: 240}},
			Reason: NodesReason{Summary: "forecast above max_rate within the lead time", Code: "ForecastAboveMaxRateWithinLeadTime", Guard: "KillBudgetPerHour",
				Thresholds: map[string]float64{"min_rate": 0.35, "max_rate": 0.85, "expect_rate": 0.65, "lead_time_s": 240},
				Inputs:     map[string]float64{"utilisation": 0.8, "online": 10, "offline": 3, "required": 13},
				Forecast:   []UtilisationPoint{{AtMs: 80, Utilisation: 0.9}}}},
		sampleTrainingDecision(),
		MetricMetadata{Metric: "http_request_duration_seconds", Type: "histogram", Unit: "seconds", Help: "Request latency.", Source: MetadataSourceRW2,
			FirstSeenMs: 1_700_000_000_000, LastSeenMs: 1_700_000_060_000},
		DeadLetter{ID: "dl1", Source: "window/0", Topic: "ebbflow.metrics.raw.v1", Partition: 3, Offset: 99, Key: "svc/c1/shop/web", Reason: "late", Error: "sample at 10:00:01 is 5m after the watermark", AtMs: 5, Payload: []byte{0, 1, 2}},
	}
}

func TestEveryEventValidates(t *testing.T) {
	for _, ev := range sampleEvents() {
		b, err := Marshal(ev)
		if err != nil {
			t.Fatalf("%T %s: %v", ev, ev.EventID(), err)
		}
		// Decode back through the schema into a fresh value and compare.
		var got Event
		switch ev.(type) {
		case Window:
			got, err = Decode[Window](b)
		case Forecast:
			got, err = Decode[Forecast](b)
		case ScaleDecision:
			got, err = Decode[ScaleDecision](b)
		case NodesDecision:
			got, err = Decode[NodesDecision](b)
		case InferenceDecision:
			got, err = Decode[InferenceDecision](b)
		case Action:
			got, err = Decode[Action](b)
		case DeadLetter:
			got, err = Decode[DeadLetter](b)
		case Alert:
			got, err = Decode[Alert](b)
		case TrainingDecision:
			got, err = Decode[TrainingDecision](b)
		case MetricMetadata:
			got, err = Decode[MetricMetadata](b)
		default:
			t.Fatalf("no decoder case for %T", ev)
		}
		if err != nil {
			t.Fatalf("decode %T: %v", ev, err)
		}
		gb, _ := json.Marshal(got)
		if string(gb) != string(b) {
			t.Errorf("%T round trip:\n got %s\nwant %s", ev, gb, b)
		}
	}
}

func TestEveryTypeHasASchemaAndASample(t *testing.T) {
	seen := map[string]bool{}
	for _, ev := range sampleEvents() {
		seen[ev.EventType()] = true
	}
	for _, typ := range EventTypes() {
		if !seen[typ] {
			t.Errorf("event type %s has a schema but no sample in this test", typ)
		}
	}
	files, err := SchemaFiles()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, typ := range EventTypes() {
		f, _ := SchemaFileFor(typ)
		used[f] = true
	}
	for f := range files {
		if !used[f] {
			t.Errorf("schema file %s is not the schema of any event type", f)
		}
	}
}

func TestDecodeNamesTheBadField(t *testing.T) {
	good, err := Marshal(sampleEvents()[4]) // the scale decision
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"wrong enum", func(m map[string]any) { m["target"].(map[string]any)["kind"] = "Pod" }, "/target/kind"},
		{"missing required", func(m map[string]any) { delete(m, "seq") }, "/"},
		{"wrong type", func(m map[string]any) { m["to"] = "five" }, "/to"},
		{"negative", func(m map[string]any) { m["to"] = -1 }, "/to"},
		{"unknown field", func(m map[string]any) { m["tooo"] = 5 }, "/"},
		{"nested demand", func(m map[string]any) {
			m["reason"].(map[string]any)["demands"].([]any)[0].(map[string]any)["expect_rate"] = 0
		}, "/reason/demands/0/expect_rate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			c.edit(m)
			bad, _ := json.Marshal(m)
			_, err := Decode[ScaleDecision](bad)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want *ValidationError, got %v", err)
			}
			if ve.Field != c.field {
				t.Errorf("field = %q, want %q (error: %v)", ve.Field, c.field, err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q does not name %s", err, c.field)
			}
		})
	}
	if _, err := Decode[Window]([]byte("{not json")); err == nil {
		t.Error("malformed JSON decoded without error")
	}
}

func TestMarshalRefusesInvalidEvents(t *testing.T) {
	w := sampleEvents()[0].(Window)
	w.Count = 0 // a window holds at least one sample
	if _, err := Marshal(w); err == nil {
		t.Fatal("Marshal accepted a window with count 0")
	}
}

func TestTopicsAndSubjects(t *testing.T) {
	if got := (Topics{}).Name(TopicMetricsWindows); got != "ebbflow.metrics.windows.v1" {
		t.Errorf("default topic = %s", got)
	}
	if got := (Topics{Prefix: "acme"}).Name(TopicDecisions); got != "acme.decisions.v1" {
		t.Errorf("prefixed topic = %s", got)
	}
	if got := DecisionSubject("scale", "eu.west", "shop"); got != "ebbflow.decisions.scale.eu_west.shop" {
		t.Errorf("subject = %s", got)
	}
	if got := AlertSubject(SeverityCritical, "scale"); got != "ebbflow.alerts.critical.scale" {
		t.Errorf("alert subject = %s", got)
	}
}

func TestRawRoundTripKeepsValuesExactly(t *testing.T) {
	in := []RawSample{
		{Entity: "svc/c1/shop/web", Signal: SignalQPS, Kind: KindCounter, Metric: "nv_inference_request_success",
			Labels: []Label{{"model", "resnet"}, {"pod", "web-1"}}, TimestampMs: 1_700_000_000_123, Value: 12345.678901234},
		{Entity: "svc/c1/shop/web", Signal: SignalCPU, Kind: KindGauge, Metric: "x", TimestampMs: -5, Value: math.Float64frombits(StaleNaN)},
		{Entity: "svc/c1/shop/web", Signal: SignalCPU, Kind: KindGauge, Metric: "y", TimestampMs: 1, Value: math.Inf(-1)},
	}
	enc := NewRawEncoder()
	for round := 0; round < 2; round++ { // the encoder reuses its builders
		b, err := enc.Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeRaw(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != len(in) {
			t.Fatalf("got %d samples, want %d", len(out), len(in))
		}
		for i := range in {
			a, b := in[i], out[i]
			if math.Float64bits(a.Value) != math.Float64bits(b.Value) || a.TimestampMs != b.TimestampMs || a.Metric != b.Metric ||
				a.Entity != b.Entity || a.Signal != b.Signal || a.Kind != b.Kind || len(a.Labels) != len(b.Labels) {
				t.Fatalf("sample %d: got %+v want %+v", i, b, a)
			}
			for j := range a.Labels {
				if a.Labels[j] != b.Labels[j] {
					t.Fatalf("sample %d label %d: got %v want %v", i, j, b.Labels[j], a.Labels[j])
				}
			}
		}
		if !IsStale(out[1].Value) {
			t.Error("stale marker lost its bit pattern")
		}
	}
	if _, err := DecodeRaw(nil, []byte("garbage")); err == nil {
		t.Error("DecodeRaw accepted garbage")
	}
}

func TestParseServiceEntity(t *testing.T) {
	c, ns, w, err := ParseServiceEntity(ServiceEntity("c1", "shop", "web"))
	if err != nil || c != "c1" || ns != "shop" || w != "web" {
		t.Fatalf("got %q %q %q %v", c, ns, w, err)
	}
	for _, bad := range []string{"", "svc/c1/shop", "node/c1/n1/x", "svc//shop/web"} {
		if _, _, _, err := ParseServiceEntity(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
