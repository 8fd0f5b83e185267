package servers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/schemas"
)

func entry(t *testing.T, file, path string, edit func(string) string) Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if edit != nil {
		s = edit(s)
	}
	return Entry{Path: path, Doc: []byte(s)}
}

func bump(to string) func(string) string {
	return func(s string) string { return strings.Replace(s, "version: 3\n", "version: "+to+"\n", 1) }
}

func ctxFor() DecideContext {
	var seq int64 = 100
	return DecideContext{Cfg: DefaultConfig(), Cluster: "c1", AtMs: 1_000, Seq: func() int64 { seq++; return seq }}
}

// apply folds outcomes into the serving state, as the loop does after a
// successful publish.
func apply(serving map[string]Serving, outs []Outcome) {
	for _, o := range outs {
		if o.Decision == nil {
			continue
		}
		if o.Next == nil {
			delete(serving, o.Model)
		} else {
			serving[o.Model] = *o.Next
		}
	}
}

func TestDecideLifecycle(t *testing.T) {
	serving := map[string]Serving{}
	c := ctxFor()
	type step struct {
		name   string
		store  []Entry
		want   []string // "<model> <action or guard>"
		detail string   // a substring of the first outcome's reason or detail
	}
	steps := []step{
		{"registered", []Entry{entry(t, "resnet50-int8.yaml", "m/resnet50.yaml", nil), entry(t, "ocr-ovms.yaml", "m/ocr.yaml", nil)},
			[]string{"ocr launch", "resnet50 launch"}, "ocr v5 registered in the model store (m/ocr.yaml): launch ovms on cpu"},
		{"unchanged", []Entry{entry(t, "resnet50-int8.yaml", "m/resnet50.yaml", nil), entry(t, "ocr-ovms.yaml", "m/ocr.yaml", nil)},
			nil, ""},
		{"new version", []Entry{entry(t, "resnet50-int8.yaml", "m/resnet50.yaml", bump("4")), entry(t, "ocr-ovms.yaml", "m/ocr.yaml", nil)},
			[]string{"resnet50 update"}, "resnet50 v3 → v4"},
		{"changed, same version", []Entry{entry(t, "resnet50-int8.yaml", "m/resnet50.yaml", func(s string) string { return strings.Replace(bump("4")(s), "instances: 2", "instances: 3", 1) }),
			entry(t, "ocr-ovms.yaml", "m/ocr.yaml", nil)},
			[]string{"resnet50 version_not_bumped"}, "version is still 4"},
		{"regressed", []Entry{entry(t, "resnet50-int8.yaml", "m/resnet50.yaml", bump("2")), entry(t, "ocr-ovms.yaml", "m/ocr.yaml", nil)},
			[]string{"resnet50 version_regressed"}, "below v4"},
		{"broken edit keeps serving", []Entry{entry(t, "resnet50-int8.yaml", "m/resnet50.yaml", func(s string) string { return strings.Replace(bump("5")(s), "device: a100", "device: v100", 1) }),
			entry(t, "ocr-ovms.yaml", "m/ocr.yaml", nil)},
			[]string{"resnet50 invalid_spec"}, "v4 keeps serving"},
		{"duplicate", []Entry{entry(t, "resnet50-int8.yaml", "m/resnet50.yaml", bump("4")), entry(t, "ocr-ovms.yaml", "m/ocr.yaml", nil),
			entry(t, "ocr-ovms.yaml", "m/ocr-copy.yaml", nil)},
			[]string{"ocr duplicate_name"}, "m/ocr.yaml also defines model ocr"},
		{"removed", []Entry{entry(t, "resnet50-int8.yaml", "m/resnet50.yaml", bump("4"))},
			[]string{"ocr retire"}, "m/ocr.yaml is gone from the model store"},
		{"all removed", nil, []string{"resnet50 retire"}, ""},
	}
	for _, s := range steps {
		outs := Decide(serving, s.store, c)
		var got []string
		for _, o := range outs {
			if o.Decision != nil {
				got = append(got, o.Model+" "+o.Decision.Action)
				// Every decision meets its contract.
				if _, err := schemas.Marshal(*o.Decision); err != nil {
					t.Errorf("%s: %s: %v", s.name, o.Model, err)
				}
			} else {
				got = append(got, o.Model+" "+string(o.Guard))
			}
		}
		if strings.Join(got, ",") != strings.Join(s.want, ",") {
			t.Fatalf("%s: outcomes %v, want %v", s.name, got, s.want)
		}
		if s.detail != "" {
			o := outs[0]
			text := o.Detail
			if o.Decision != nil {
				text = o.Decision.Reason.Summary
			}
			if !strings.Contains(text, s.detail) {
				t.Errorf("%s: %q does not contain %q", s.name, text, s.detail)
			}
		}
		apply(serving, outs)
	}
	if len(serving) != 0 {
		t.Errorf("still serving after all removed: %v", serving)
	}
}

func TestDecideUpdateCarriesTheReason(t *testing.T) {
	c := ctxFor()
	serving := map[string]Serving{}
	apply(serving, Decide(serving, []Entry{entry(t, "resnet50-int8.yaml", "m/r.yaml", nil)}, c))
	v4 := entry(t, "resnet50-int8.yaml", "m/r.yaml", bump("4"))
	outs := Decide(serving, []Entry{v4}, c)
	d := outs[0].Decision
	r := d.Reason
	if d.Action != schemas.InferenceUpdate || r.FromVersion != 3 || r.ToVersion != 4 || r.ToDigest != Digest(v4.Doc) ||
		r.FromDigest == r.ToDigest || d.Spec != string(v4.Doc) || d.SpecDigest != r.ToDigest || d.Seq <= 101 ||
		d.Target.Namespace != "ebbflow-serving" || d.Target.Name != "resnet50" || d.ExpiresMs != d.AtMs+DefaultConfig().DecisionTTL.Milliseconds() {
		t.Errorf("update decision %+v", d)
	}
}
