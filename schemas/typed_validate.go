package schemas

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// SelfValidator is an event that checks its own schema constraints with
// typed Go code. Marshal uses it instead of JSON Schema validation for
// ebbflow's own events, where that validation would dominate the cost of
// producing (the JSON document is parsed again and walked generically).
// Each Validate mirrors its JSON Schema exactly for every value json.Marshal
// can produce from the type; TestTypedValidateMatchesSchema checks the two
// agree on random valid and mutated events. Foreign input is still checked
// against the JSON Schema in full by Unmarshal and Decode.
type SelfValidator interface {
	Event
	Validate() error
}

func fieldErr(ceType, field, reason string) error {
	return &ValidationError{Type: ceType, Field: field, Reason: reason, All: []string{field + ": " + reason}}
}

// Validate checks d against decision.scale.schema.json (see SelfValidator).
func (d ScaleDecision) Validate() error {
	t := d.EventType()
	switch {
	case d.ID == "":
		return fieldErr(t, "/id", "minLength: got 0, want 1")
	case d.Kind != "scale":
		return fieldErr(t, "/kind", fmt.Sprintf("value must be %q", "scale"))
	case d.Seq < 1:
		return fieldErr(t, "/seq", fmt.Sprintf("minimum: got %d, want 1", d.Seq))
	case d.Target.Cluster == "":
		return fieldErr(t, "/target/cluster", "minLength: got 0, want 1")
	case d.Target.Namespace == "":
		return fieldErr(t, "/target/namespace", "minLength: got 0, want 1")
	case d.Target.Kind != "Deployment" && d.Target.Kind != "StatefulSet":
		return fieldErr(t, "/target/kind", fmt.Sprintf("value must be one of \"Deployment\", \"StatefulSet\", got %q", d.Target.Kind))
	case d.Target.Name == "":
		return fieldErr(t, "/target/name", "minLength: got 0, want 1")
	case d.From < 0:
		return fieldErr(t, "/from", fmt.Sprintf("minimum: got %d, want 0", d.From))
	case d.To < 0:
		return fieldErr(t, "/to", fmt.Sprintf("minimum: got %d, want 0", d.To))
	case d.Reason.Summary == "":
		return fieldErr(t, "/reason/summary", "minLength: got 0, want 1")
	case d.Reason.HorizonMinutes < 0:
		return fieldErr(t, "/reason/horizon_minutes", fmt.Sprintf("minimum: got %d, want 0", d.Reason.HorizonMinutes))
	case d.Reason.Demands == nil:
		return fieldErr(t, "/reason/demands", "got null, want array")
	}
	for i, dm := range d.Reason.Demands {
		at := "/reason/demands/" + strconv.Itoa(i)
		switch {
		case !(dm.ExpectRate > 0):
			return fieldErr(t, at+"/expect_rate", fmt.Sprintf("exclusiveMinimum: got %v, want > 0", dm.ExpectRate))
		case dm.Desired < 0:
			return fieldErr(t, at+"/desired", fmt.Sprintf("minimum: got %d, want 0", dm.Desired))
		case dm.Source != "forecast" && dm.Source != "reactive" && dm.Source != "fallback":
			return fieldErr(t, at+"/source", fmt.Sprintf("value must be one of \"forecast\", \"reactive\", \"fallback\", got %q", dm.Source))
		}
	}
	return nil
}

// windowEntity is window.schema.json's entity pattern. The JSON Schema
// validator matches it with Go's regexp too, on the string as encoded (an
// invalid UTF-8 byte becomes U+FFFD).
var windowEntity = regexp.MustCompile(`^(svc|node|job|pool)/[^/]+/.+$`)

// Validate checks w against window.schema.json (see SelfValidator).
func (w Window) Validate() error {
	t := w.EventType()
	switch {
	case !windowEntity.MatchString(strings.ToValidUTF8(w.Entity, "\uFFFD")):
		return fieldErr(t, "/entity", fmt.Sprintf("%q does not match pattern %q", w.Entity, windowEntity.String()))
	case w.Signal == "":
		return fieldErr(t, "/signal", "minLength: got 0, want 1")
	case w.Kind != KindGauge && w.Kind != KindCounter:
		return fieldErr(t, "/kind", fmt.Sprintf("value must be one of \"gauge\", \"counter\", got %q", w.Kind))
	case w.SizeS < 1:
		return fieldErr(t, "/size_s", fmt.Sprintf("minimum: got %d, want 1", w.SizeS))
	case w.Revision < 0:
		return fieldErr(t, "/revision", fmt.Sprintf("minimum: got %d, want 0", w.Revision))
	case w.Count < 1:
		return fieldErr(t, "/count", fmt.Sprintf("minimum: got %d, want 1", w.Count))
	}
	return nil
}
