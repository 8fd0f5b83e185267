package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed json/*.schema.json
var schemaFS embed.FS

// SchemaFiles returns the embedded JSON Schema files by file name, for
// tools that publish them (and for tests in other languages, which read
// the same files from schemas/json/).
func SchemaFiles() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := fs.WalkDir(schemaFS, "json", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := schemaFS.ReadFile(path)
		if err != nil {
			return err
		}
		out[strings.TrimPrefix(path, "json/")] = b
		return nil
	})
	return out, err
}

// schemaFile maps each CloudEvents type to its schema file.
var schemaFile = map[string]string{
	Window{}.EventType():            "window.schema.json",
	Forecast{}.EventType():          "forecast.schema.json",
	ScaleDecision{}.EventType():     "decision.scale.schema.json",
	NodesDecision{}.EventType():     "decision.nodes.schema.json",
	Action{}.EventType():            "action.schema.json",
	DeadLetter{}.EventType():        "deadletter.schema.json",
	Alert{}.EventType():             "alert.schema.json",
	Window{}.EventType():            "window.schema.json",
	Forecast{}.EventType():          "forecast.schema.json",
	ScaleDecision{}.EventType():     "decision.scale.schema.json",
	InferenceDecision{}.EventType(): "decision.inference.schema.json",
	TrainingDecision{}.EventType():  "decision.training.schema.json",
	Action{}.EventType():            "action.schema.json",
	DeadLetter{}.EventType():        "deadletter.schema.json",
	Alert{}.EventType():             "alert.schema.json",
	MetricMetadata{}.EventType():    "metricmetadata.schema.json",
}

// EventTypes returns every CloudEvents type this package defines, sorted.
func EventTypes() []string {
	out := make([]string, 0, len(schemaFile))
	for t := range schemaFile {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// SchemaFileFor returns the schema file name of a CloudEvents type.
func SchemaFileFor(ceType string) (string, bool) {
	f, ok := schemaFile[ceType]
	return f, ok
}

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	compileErr  error
)

func compileAll() (map[string]*jsonschema.Schema, error) {
	compileOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		files, err := SchemaFiles()
		if err != nil {
			compileErr = err
			return
		}
		for name, b := range files {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				compileErr = fmt.Errorf("schemas: %s: %w", name, err)
				return
			}
			if err := c.AddResource(name, doc); err != nil {
				compileErr = fmt.Errorf("schemas: %s: %w", name, err)
				return
			}
		}
		compiled = map[string]*jsonschema.Schema{}
		for ceType, name := range schemaFile {
			s, err := c.Compile(name)
			if err != nil {
				compileErr = fmt.Errorf("schemas: compile %s: %w", name, err)
				return
			}
			compiled[ceType] = s
		}
	})
	return compiled, compileErr
}

// ValidationError reports a JSON document that violates its schema. Field
// is the JSON pointer of the first offending field ("/target/kind").
type ValidationError struct {
	Type   string
	Field  string
	Reason string
	All    []string
}

func (e *ValidationError) Error() string {
	field := e.Field
	if field == "" {
		field = "/"
	}
	msg := fmt.Sprintf("schemas: %s: field %s: %s", e.Type, field, e.Reason)
	if len(e.All) > 1 {
		msg += fmt.Sprintf(" (and %d more: %s)", len(e.All)-1, strings.Join(e.All[1:], "; "))
	}
	return msg
}

// Validate checks a JSON document against the schema of a CloudEvents type.
func Validate(ceType string, doc []byte) error {
	all, err := compileAll()
	if err != nil {
		return err
	}
	s, ok := all[ceType]
	if !ok {
		return fmt.Errorf("schemas: unknown event type %q", ceType)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return &ValidationError{Type: ceType, Reason: "not JSON: " + err.Error()}
	}
	err = s.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("schemas: %s: %w", ceType, err)
	}
	out := &ValidationError{Type: ceType}
	for _, u := range leaves(ve.DetailedOutput(), nil) {
		out.All = append(out.All, u.loc+": "+u.msg)
		if out.Field == "" {
			out.Field, out.Reason = u.loc, u.msg
		}
	}
	if out.Field == "" {
		out.Field, out.Reason = "/", ve.Error()
	}
	return out
}

type leafError struct{ loc, msg string }

// leaves collects the innermost errors of a detailed output: the ones that
// name the offending field rather than "validation failed".
func leaves(o *jsonschema.OutputUnit, acc []leafError) []leafError {
	if len(o.Errors) == 0 {
		if o.Error != nil {
			loc := o.InstanceLocation
			if loc == "" {
				loc = "/"
			}
			acc = append(acc, leafError{loc: loc, msg: o.Error.String()})
		}
		return acc
	}
	for i := range o.Errors {
		acc = leaves(&o.Errors[i], acc)
	}
	return acc
}

// Marshal encodes an event as JSON and validates it against its schema, so
// nothing that violates the contract leaves the process. Events that are
// SelfValidators check themselves with typed code proven equivalent to
// their schema; the others are validated against the JSON Schema.
func Marshal(ev Event) ([]byte, error) {
	var b []byte
	var err error
	if ja, ok := ev.(jsonAppender); ok {
		// json.Marshal's bytes without reflection (windows, scale decisions).
		size := 512 // a window is ~350 bytes
		if _, ok := ev.(ScaleDecision); ok {
			size = 1024 // a decision with its explanation ~850
		}
		if b, err = ja.appendJSON(make([]byte, 0, size)); err != nil {
			return nil, err // names the event type and the field
		}
	} else if b, err = json.Marshal(ev); err != nil {
		return nil, fmt.Errorf("schemas: encode %s: %w", ev.EventType(), err)
	}
	if sv, ok := ev.(SelfValidator); ok {
		// ebbflow's own typed event: typed checks equivalent to its schema.
		if err := sv.Validate(); err != nil {
			return nil, err
		}
		return b, nil
	}
	if err := Validate(ev.EventType(), b); err != nil {
		return nil, err
	}
	return b, nil
}

// Unmarshal validates a JSON document against the schema of v's event type
// and decodes it into v. A document that violates the schema returns a
// *ValidationError naming the field.
func Unmarshal(doc []byte, v Event) error {
	// The plain form of a window is checked and decoded in one typed pass
	// (proven to accept only what the schema accepts, with the same
	// value); anything else takes the full JSON Schema path below.
	if fd, ok := v.(fastDecoder); ok && fd.decodeFast(doc) {
		return nil
	}
	if err := Validate(v.EventType(), doc); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("schemas: decode %s: %w", v.EventType(), err)
	}
	return nil
}

// Decode is Unmarshal for a value type: Decode[Window](b).
func Decode[T Event](doc []byte) (T, error) {
	var v T
	p := reflect.New(reflect.TypeOf(v))
	ev, ok := p.Interface().(Event)
	if !ok {
		return v, fmt.Errorf("schemas: %T is not an Event through a pointer", v)
	}
	if err := Unmarshal(doc, ev); err != nil {
		return v, err
	}
	return p.Elem().Interface().(T), nil
}

// CloudEvents binary-mode Kafka header names.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderSource      = "ce_source"
	HeaderType        = "ce_type"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderDataSchema  = "ce_dataschema"
	HeaderContentType = "content-type"
)

// Header is one CloudEvents binary-mode header (a Kafka record header, a
// NATS message header). internal/kafkax and internal/natsbus turn them into
// their clients' types.
type Header struct{ Key, Value string }

// Headers returns the CloudEvents binary-mode headers of an event. source
// names the producing component, e.g. "/ebbflow/window/pod-7".
func Headers(source string, ev Event) []Header {
	return AppendHeaders(make([]Header, 0, 8), source, ev)
}

// AppendHeaders appends the headers of Headers to h (one allocation per
// event on the produce path, not one per header).
func AppendHeaders(h []Header, source string, ev Event) []Header {
	t := ev.EventType()
	h = append(h,
		Header{HeaderSpecVersion, "1.0"},
		Header{HeaderID, ev.EventID()},
		Header{HeaderSource, source},
		Header{HeaderType, t},
		Header{HeaderTime, ev.EventTime().UTC().Format(time.RFC3339Nano)},
		Header{HeaderContentType, "application/json"},
	)
	if k := ev.EventKey(); k != "" {
		h = append(h, Header{HeaderSubject, k})
	}
	if u, ok := dataSchemaURL[t]; ok {
		h = append(h, Header{HeaderDataSchema, u})
	}
	return h
}

// dataSchemaURL is the ce_dataschema of each event type, built once.
var dataSchemaURL = func() map[string]string {
	m := make(map[string]string, len(schemaFile))
	for t, f := range schemaFile {
		m[t] = "https://ebbflow.dev/schemas/" + f
	}
	return m
}()
