package servers

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ebbflow/ebbflow/schemas"
)

// Entry is one spec file read from the model store.
type Entry struct {
	// Path is the file's path in the store.
	Path string
	// Doc is the file's bytes.
	Doc []byte
}

// Serving is what the decider last decided for a model: what serves now,
// or will once the actuator has acted.
type Serving struct {
	Version int64
	Digest  string
	Path    string
	Spec    Spec
}

// Guard names why a spec in the store led to no decision.
type Guard string

// Guards, one per rule a store entry can break.
const (
	// GuardInvalidSpec: the file does not parse or validate. A model that
	// serves keeps serving its last good version.
	GuardInvalidSpec Guard = "invalid_spec"
	// GuardDuplicateName: another file (earlier by path) already defines
	// the model.
	GuardDuplicateName Guard = "duplicate_name"
	// GuardVersionNotBumped: the spec changed but its version did not; a
	// rollout must be identifiable by its version.
	GuardVersionNotBumped Guard = "version_not_bumped"
	// GuardVersionRegressed: the version is below the one serving.
	GuardVersionRegressed Guard = "version_regressed"
)

// Outcome is the decider's verdict on one model: a decision, or the guard
// that held it back (with the detail a person needs to fix the store).
type Outcome struct {
	Model    string
	Path     string
	Decision *schemas.InferenceDecision
	Guard    Guard
	Detail   string
	// Next is what serves after the decision (nil after a retire or when
	// guarded).
	Next *Serving
}

// DecideContext is what a decision needs besides the store and the state.
type DecideContext struct {
	Cfg     Config
	Cluster string
	AtMs    int64
	// Seq returns the next decision sequence (growing, across restarts).
	Seq func() int64
	// DryRun marks every decision dry_run.
	DryRun bool
}

// Decide compares the model store with what serves and returns one
// outcome per model that needs a decision or broke a rule, sorted by
// model: launch a model that appeared, update one whose version grew,
// retire one whose file is gone. Pure: no I/O.
func Decide(serving map[string]Serving, store []Entry, c DecideContext) []Outcome {
	var out []Outcome
	byPath := map[string]string{} // serving path → model
	for name, s := range serving {
		byPath[s.Path] = name
	}
	entries := append([]Entry(nil), store...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	seen := map[string]string{} // model → path defining it
	type parsed struct {
		e    Entry
		spec Spec
	}
	var valid []parsed
	for _, e := range entries {
		spec, err := ParseBytes(e.Doc)
		if err == nil {
			err = spec.Validate(c.Cfg)
		}
		if err == nil {
			valid = append(valid, parsed{e, spec})
			continue
		}
		model := byPath[e.Path]
		if spec.Name != "" && model == "" {
			model = spec.Name
		}
		detail := strings.ReplaceAll(err.Error(), "\n", "; ")
		if cur, ok := serving[model]; ok {
			detail += fmt.Sprintf(" (v%d keeps serving)", cur.Version)
			seen[model] = e.Path
		}
		out = append(out, Outcome{Model: model, Path: e.Path, Guard: GuardInvalidSpec, Detail: detail})
	}
	// Of several files defining one model, the one it is served from wins,
	// else the first by path.
	winner := map[string]string{}
	for _, p := range valid {
		if w, ok := winner[p.spec.Name]; !ok || (p.e.Path == serving[p.spec.Name].Path && w != p.e.Path) {
			winner[p.spec.Name] = p.e.Path
		}
	}
	for _, p := range valid {
		name := p.spec.Name
		if first, broken := seen[name]; broken && first != p.e.Path {
			out = append(out, Outcome{Model: name, Path: p.e.Path, Guard: GuardDuplicateName,
				Detail: fmt.Sprintf("%s also defines model %s; this file is ignored", first, name)})
			continue
		}
		if w := winner[name]; w != p.e.Path {
			out = append(out, Outcome{Model: name, Path: p.e.Path, Guard: GuardDuplicateName,
				Detail: fmt.Sprintf("%s also defines model %s; this file is ignored", w, name)})
			continue
		}
		seen[name] = p.e.Path
		out = append(out, decideOne(serving[name], name, p.spec, p.e, c)...)
	}
	for _, name := range sortedKeys(serving) {
		if _, ok := seen[name]; ok {
			continue
		}
		s := serving[name]
		d := c.decision(schemas.InferenceRetire, s.Spec, nil, "")
		d.Model = schemas.ModelServer{Name: name, Version: s.Version, Server: s.Spec.Server, Format: s.Spec.Format, Device: s.Spec.Device, Precision: s.Spec.Precision.Mode}
		d.Reason = schemas.InferenceReason{Trigger: schemas.TriggerRemoved, StorePath: s.Path, FromVersion: s.Version, FromDigest: s.Digest,
			Summary: fmt.Sprintf("%s v%d: %s is gone from the model store; retire its server", name, s.Version, s.Path)}
		out = append(out, Outcome{Model: name, Path: s.Path, Decision: &d})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Model < out[j].Model })
	return out
}

// decideOne decides for one valid spec.
func decideOne(cur Serving, name string, spec Spec, e Entry, c DecideContext) []Outcome {
	digest := Digest(e.Doc)
	next := &Serving{Version: spec.Version, Digest: digest, Path: e.Path, Spec: spec}
	switch {
	case cur.Digest == "":
		d := c.decision(schemas.InferenceLaunch, spec, e.Doc, digest)
		d.Reason = schemas.InferenceReason{Trigger: schemas.TriggerRegistered, StorePath: e.Path, ToVersion: spec.Version, ToDigest: digest,
			Summary: fmt.Sprintf("%s v%d registered in the model store (%s): launch %s on %s", name, spec.Version, e.Path, spec.Server, spec.Device)}
		return []Outcome{{Model: name, Path: e.Path, Decision: &d, Next: next}}
	case cur.Digest == digest:
		return nil
	case spec.Version == cur.Version:
		return []Outcome{{Model: name, Path: e.Path, Guard: GuardVersionNotBumped,
			Detail: fmt.Sprintf("%s changed but its version is still %d; bump version to roll it out (v%d keeps serving)", e.Path, spec.Version, cur.Version)}}
	case spec.Version < cur.Version:
		return []Outcome{{Model: name, Path: e.Path, Guard: GuardVersionRegressed,
			Detail: fmt.Sprintf("%s has version %d, below v%d serving; versions only grow", e.Path, spec.Version, cur.Version)}}
	}
	d := c.decision(schemas.InferenceUpdate, spec, e.Doc, digest)
	d.Reason = schemas.InferenceReason{Trigger: schemas.TriggerChanged, StorePath: e.Path,
		FromVersion: cur.Version, ToVersion: spec.Version, FromDigest: cur.Digest, ToDigest: digest,
		Summary: fmt.Sprintf("%s v%d → v%d: new version in the model store (%s); roll out with v%d serving until v%d is Ready",
			name, cur.Version, spec.Version, e.Path, cur.Version, spec.Version)}
	return []Outcome{{Model: name, Path: e.Path, Decision: &d, Next: next}}
}

func (c DecideContext) decision(action string, spec Spec, doc []byte, digest string) schemas.InferenceDecision {
	seq := c.Seq()
	d := schemas.InferenceDecision{
		ID:   fmt.Sprintf("inference/%s/%s/%s/v%d/%d", c.Cluster, spec.NamespaceOr(c.Cfg), spec.Name, spec.Version, seq),
		Kind: schemas.DecisionInference, Seq: seq, Action: action,
		Target: schemas.Target{Cluster: c.Cluster, Namespace: spec.NamespaceOr(c.Cfg), Kind: "Deployment", Name: spec.Name},
		Model: schemas.ModelServer{Name: spec.Name, Version: spec.Version, Server: spec.Server, Format: spec.Format,
			Device: spec.Device, Precision: spec.Precision.Mode},
		AtMs: c.AtMs, ExpiresMs: c.AtMs + c.Cfg.DecisionTTL.Milliseconds(), DryRun: c.DryRun, DecidedBy: c.Cfg.Source,
	}
	if doc != nil {
		d.Spec, d.SpecDigest = string(doc), digest
	}
	return d
}
