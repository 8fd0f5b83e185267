package schemas

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestAsyncAPIMatchesCode keeps asyncapi.yaml true to the code: it lists
// exactly the topics and NATS subjects this package defines, and every
// schema it references exists.
func TestAsyncAPIMatchesCode(t *testing.T) {
	b, err := os.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Channels map[string]struct {
			Address  string `yaml:"address"`
			Messages map[string]struct {
				Payload map[string]any `yaml:"payload"`
			} `yaml:"messages"`
		} `yaml:"channels"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	refs := map[string]bool{}
	for _, ch := range doc.Channels {
		got = append(got, ch.Address)
		for _, m := range ch.Messages {
			if r, ok := m.Payload["$ref"].(string); ok {
				refs[filepath.Base(r)] = true
				if _, err := os.Stat(r); err != nil {
					t.Errorf("channel %s references %s: %v", ch.Address, r, err)
				}
			}
		}
	}
	want := (Topics{}).All()
	want = append(want,
		DecisionSubject("{kind}", "{cluster}", "{namespace}"),
		AlertSubject("{severity}", "{kind}"))
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("asyncapi.yaml channels:\n%s\nthe code defines:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	files, _ := SchemaFiles()
	for f := range files {
		if !refs[f] {
			t.Errorf("schema %s is not referenced by any channel in asyncapi.yaml", f)
		}
	}
}
