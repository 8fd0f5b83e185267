package schemas

import (
	"encoding/json"
	"testing"
)

// TestInferenceDecisionNeedsSpecToLaunch: launch and update carry the
// spec; retire does not need one.
func TestInferenceDecisionNeedsSpecToLaunch(t *testing.T) {
	var upd InferenceDecision
	for _, ev := range sampleEvents() {
		if d, ok := ev.(InferenceDecision); ok && d.Action == InferenceUpdate {
			upd = d
		}
	}
	for _, action := range []string{InferenceLaunch, InferenceUpdate} {
		d := upd
		d.Action, d.Spec = action, ""
		b, _ := json.Marshal(d)
		err := Validate(d.EventType(), b)
		ve, ok := err.(*ValidationError)
		if !ok {
			t.Fatalf("%s without spec: %v", action, err)
		}
		if ve.Field != "/" {
			t.Errorf("%s without spec: field %q", action, ve.Field)
		}
	}
	d := upd
	d.Action, d.Spec, d.SpecDigest = InferenceRetire, "", ""
	b, _ := json.Marshal(d)
	if err := Validate(d.EventType(), b); err != nil {
		t.Errorf("retire without spec: %v", err)
	}
	d.Target.Kind = "StatefulSet"
	b, _ = json.Marshal(d)
	if err := Validate(d.EventType(), b); err == nil {
		t.Error("an inference decision on a StatefulSet was accepted")
	}
}
