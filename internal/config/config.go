// Package config is ebbflow's generic configuration loader: given a struct
// whose fields are sections (the composition root, cmd/ebbflow/internal/wire,
// aggregates every component's section), it applies documented defaults, strict YAML (an unknown field is an
// error, so a typo never silently falls back to a default), environment
// overrides (EBBFLOW_<SECTION>_<FIELD>) and command-line overrides
// (--set section.field=value), in that order of precedence.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Validate calls Validate on every section of c (a struct, or a pointer
// to one, whose fields are the sections) that has one, and names the first
// bad field as section.field.
func Validate(c any) error {
	type validator interface{ Validate() error }
	v := reflect.Indirect(reflect.ValueOf(c))
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if !t.Field(i).IsExported() {
			continue
		}
		sec, ok := v.Field(i).Interface().(validator)
		if !ok {
			continue
		}
		if err := sec.Validate(); err != nil {
			return fmt.Errorf("%s.%w", yamlName(t.Field(i)), err)
		}
	}
	return nil
}

// Options say where the configuration comes from.
type Options struct {
	// File is the YAML file; empty means defaults only.
	File string
	// Env is the environment (os.Environ() form); EBBFLOW_* entries override.
	Env []string
	// Sets are section.field=value overrides, applied last.
	Sets []string
}

// Load builds a configuration onto c, which holds the defaults: then the
// file, then the environment, then the overrides, then validation (Validate).
func Load(o Options, c any) error {
	if o.File != "" {
		f, err := os.Open(o.File)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		if err := Decode(f, c); err != nil {
			return fmt.Errorf("config: %s: %w", o.File, err)
		}
	}
	for _, kv := range o.Env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		path, ok := EnvPath(reflect.TypeOf(c).Elem(), strings.Split(strings.TrimPrefix(name, EnvPrefix), "_"))
		if !ok {
			// Variables such as EBBFLOW_TEST_* belong to the scripts, not
			// the configuration.
			continue
		}
		if err := Set(c, path, val); err != nil {
			return fmt.Errorf("config: environment %s: %w", name, err)
		}
	}
	for _, s := range o.Sets {
		path, val, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("config: --set %q: want section.field=value", s)
		}
		if err := Set(c, path, val); err != nil {
			return fmt.Errorf("config: --set %s: %w", path, err)
		}
	}
	if err := Validate(c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// EnvPrefix starts every environment override.
const EnvPrefix = "EBBFLOW_"

// Decode strictly decodes YAML onto c: unknown fields are errors that name
// the line and field.
func Decode(r io.Reader, c any) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	return nil
}

// Marshal renders c as YAML (used by `ebbflow config defaults`).
func Marshal(c any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Set assigns value to the field at a dotted YAML path such as
// "kafka.brokers". Lists take comma-separated values or YAML flow syntax.
func Set(c any, path, value string) error {
	v := reflect.ValueOf(c).Elem()
	parts := strings.Split(path, ".")
	for i, p := range parts {
		if v.Kind() != reflect.Struct {
			return fmt.Errorf("%s is not a section", strings.Join(parts[:i], "."))
		}
		f, ok := fieldByYAML(v, p)
		if !ok {
			return fmt.Errorf("unknown field %q (known: %s)", strings.Join(parts[:i+1], "."), strings.Join(yamlNames(v.Type()), ", "))
		}
		v = f
	}
	doc := value
	if v.Kind() == reflect.Slice && !strings.HasPrefix(strings.TrimSpace(value), "[") {
		items := strings.Split(value, ",")
		for i := range items {
			items[i] = yamlQuote(strings.TrimSpace(items[i]))
		}
		doc = "[" + strings.Join(items, ", ") + "]"
	} else if v.Kind() == reflect.String {
		doc = yamlQuote(value)
	}
	n := reflect.New(v.Type())
	if err := yaml.Unmarshal([]byte(doc), n.Interface()); err != nil {
		return fmt.Errorf("%s: %q: %w", path, value, err)
	}
	v.Set(n.Elem())
	return nil
}

func yamlQuote(s string) string {
	b, _ := yaml.Marshal(s)
	return strings.TrimSpace(string(b))
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func yamlNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() {
			out = append(out, yamlName(t.Field(i)))
		}
	}
	sort.Strings(out)
	return out
}

func fieldByYAML(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() && yamlName(t.Field(i)) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// EnvPath maps the tokens of EBBFLOW_KAFKA_CLIENT_ID to "kafka.client_id",
// matching the longest YAML name at each level.
func EnvPath(t reflect.Type, tokens []string) (string, bool) {
	if len(tokens) == 0 {
		return "", false
	}
	if t.Kind() != reflect.Struct {
		return "", false
	}
	for n := len(tokens); n >= 1; n-- {
		want := strings.ToLower(strings.Join(tokens[:n], "_"))
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() || yamlName(f) != want {
				continue
			}
			if n == len(tokens) {
				return want, true
			}
			rest, ok := EnvPath(f.Type, tokens[n:])
			if ok {
				return want + "." + rest, true
			}
		}
	}
	return "", false
}
