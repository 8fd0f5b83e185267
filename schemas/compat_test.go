package schemas

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

var updateReleased = flag.Bool("update-released", false, "write the current schemas and examples to testdata/released (only when cutting a new topic version)")

// TestSchemasBackwardCompatible proves every schema still accepts what the
// released version accepted: data written by an older producer must stay
// readable. It compares each released schema (testdata/released) with the
// current one, structurally, and validates the released example events
// against the current schemas. Breaking changes need a new topic version.
func TestSchemasBackwardCompatible(t *testing.T) {
	dir := filepath.Join("testdata", "released")
	if *updateReleased {
		writeReleased(t, dir)
	}
	files, err := SchemaFiles()
	if err != nil {
		t.Fatal(err)
	}
	released, err := filepath.Glob(filepath.Join(dir, "*.schema.json"))
	if err != nil || len(released) == 0 {
		t.Fatalf("no released schemas in %s (%v)", dir, err)
	}
	for _, path := range released {
		name := filepath.Base(path)
		cur, ok := files[name]
		if !ok {
			t.Errorf("%s: released schema was removed", name)
			continue
		}
		var oldS, newS map[string]any
		mustJSON(t, readFile(t, path), &oldS)
		mustJSON(t, cur, &newS)
		for _, p := range compatProblems(name, oldS, newS) {
			t.Error(p)
		}
	}
	examples, _ := filepath.Glob(filepath.Join(dir, "examples", "*.json"))
	if len(examples) == 0 {
		t.Fatal("no released example events")
	}
	for _, path := range examples {
		var ex struct {
			Type  string          `json:"type"`
			Event json.RawMessage `json:"event"`
		}
		mustJSON(t, readFile(t, path), &ex)
		if err := Validate(ex.Type, ex.Event); err != nil {
			t.Errorf("released example %s no longer validates: %v", filepath.Base(path), err)
		}
	}
}

// TestCompatProblemsCatchesBreakingChanges keeps the checker honest.
func TestCompatProblemsCatchesBreakingChanges(t *testing.T) {
	old := map[string]any{
		"type": "object", "required": []any{"a"},
		"properties": map[string]any{
			"a": map[string]any{"type": "string"},
			"b": map[string]any{"enum": []any{"x", "y"}},
			"c": map[string]any{"type": "object", "properties": map[string]any{"d": map[string]any{"type": "integer"}}},
		},
	}
	cases := map[string]func(m map[string]any){
		"new required":     func(m map[string]any) { m["required"] = []any{"a", "b"} },
		"removed property": func(m map[string]any) { delete(m["properties"].(map[string]any), "a") },
		"type change":      func(m map[string]any) { m["properties"].(map[string]any)["a"] = map[string]any{"type": "integer"} },
		"narrowed enum":    func(m map[string]any) { m["properties"].(map[string]any)["b"] = map[string]any{"enum": []any{"x"}} },
		"nested type": func(m map[string]any) {
			m["properties"].(map[string]any)["c"].(map[string]any)["properties"].(map[string]any)["d"] = map[string]any{"type": "string"}
		},
	}
	for name, edit := range cases {
		n := deepCopy(old)
		edit(n)
		if len(compatProblems("t", old, n)) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
	n := deepCopy(old)
	n["properties"].(map[string]any)["e"] = map[string]any{"type": "number"} // optional addition is fine
	n["properties"].(map[string]any)["b"] = map[string]any{"enum": []any{"x", "y", "z"}}
	if p := compatProblems("t", old, n); len(p) != 0 {
		t.Errorf("compatible change flagged: %v", p)
	}
}

func compatProblems(at string, oldS, newS map[string]any) []string {
	var out []string
	if !reflect.DeepEqual(oldS["type"], newS["type"]) {
		out = append(out, fmt.Sprintf("%s: type changed from %v to %v", at, oldS["type"], newS["type"]))
	}
	if c, ok := oldS["const"]; ok && !reflect.DeepEqual(c, newS["const"]) {
		out = append(out, fmt.Sprintf("%s: const changed from %v to %v", at, c, newS["const"]))
	}
	if oe, ok := oldS["enum"].([]any); ok {
		ne, _ := newS["enum"].([]any)
		for _, v := range oe {
			if !containsValue(ne, v) {
				out = append(out, fmt.Sprintf("%s: enum value %v was removed", at, v))
			}
		}
	}
	oldReq := stringSet(oldS["required"])
	for r := range stringSet(newS["required"]) {
		if !oldReq[r] {
			out = append(out, fmt.Sprintf("%s: field %q became required", at, r))
		}
	}
	oldProps, _ := oldS["properties"].(map[string]any)
	newProps, _ := newS["properties"].(map[string]any)
	keys := make([]string, 0, len(oldProps))
	for k := range oldProps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		np, ok := newProps[k].(map[string]any)
		if !ok {
			out = append(out, fmt.Sprintf("%s: property %q was removed", at, k))
			continue
		}
		op, _ := oldProps[k].(map[string]any)
		out = append(out, compatProblems(at+"/"+k, op, np)...)
	}
	for _, sub := range []string{"items", "additionalProperties"} {
		o, ok1 := oldS[sub].(map[string]any)
		n, ok2 := newS[sub].(map[string]any)
		if ok1 && ok2 {
			out = append(out, compatProblems(at+"/"+sub, o, n)...)
		}
	}
	if od, ok := oldS["$defs"].(map[string]any); ok {
		nd, _ := newS["$defs"].(map[string]any)
		for k, v := range od {
			n, ok := nd[k].(map[string]any)
			if !ok {
				out = append(out, fmt.Sprintf("%s: $defs/%s was removed", at, k))
				continue
			}
			out = append(out, compatProblems(at+"/$defs/"+k, v.(map[string]any), n)...)
		}
	}
	return out
}

func writeReleased(t *testing.T, dir string) {
	files, err := SchemaFiles()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, ev := range sampleEvents() {
		b, err := Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := json.MarshalIndent(map[string]any{"type": ev.EventType(), "event": json.RawMessage(b)}, "", "  ")
		name := fmt.Sprintf("%02d-%s.json", i, strings.TrimPrefix(ev.EventType(), "io.ebbflow."))
		if err := os.WriteFile(filepath.Join(dir, "examples", name), doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func stringSet(v any) map[string]bool {
	out := map[string]bool{}
	l, _ := v.([]any)
	for _, x := range l {
		if s, ok := x.(string); ok {
			out[s] = true
		}
	}
	return out
}

func containsValue(l []any, v any) bool {
	for _, x := range l {
		if reflect.DeepEqual(x, v) {
			return true
		}
	}
	return false
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
