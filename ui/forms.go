package ui

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// FormData is a form page: its fields as submitted, the errors (each
// naming its field) or the result.
type FormData struct {
	Form, Title, Action, Intro string
	Doc                        string
	Check                      bool // dry run / validate only
	CheckLabel                 string
	CSRF                       string
	Errors                     []string
	Result                     *FormResult
	Disabled                   string // why the form cannot act
	Example                    string
}

// PageTitle implements titled.
func (d FormData) PageTitle() string { return d.Title }

const trainingExample = `department: research
user: alice
family: resnet50-imagenet
image: registry.example/train:1.2
command: ["python", "train.py", "--epochs", "90"]
gpus:
  count: 8
  model: a100
  fallbacks: [v100]
cpu: "16"
memory: 128Gi
expected_duration: 6h
`

const modelExample = `name: resnet50
version: 1
format: onnx
model_uri: /models/resnet50/1
server: triton
device: a100
precision: {mode: fp16}
max_batch_size: 32
inputs:
  - {name: input, data_type: fp32, dims: [3, 224, 224]}
outputs:
  - {name: probabilities, data_type: fp32, dims: [1000]}
batching: {preferred_batch_sizes: [8, 16], max_queue_delay_us: 500}
resources: {cpu: "4", memory: 8Gi, gpus: 1}
scaling:
  min_replicas: 1
  max_replicas: 4
  startup_time: 2m
  signals:
    qps: {expect_rate: 0.7, capacity: 100}
`

func (s *Server) trainingForm(r *http.Request) (any, int, error) {
	d := FormData{Form: "training", Title: "Submit a training job", Action: "/forms/training",
		Intro:      "The job spec (YAML) as `ebbflow training submit FILE` reads it: it is validated, sized from the family's history, placed and created as a suspended Kueue Job.",
		CheckLabel: "Dry run: plan and show the Job, create nothing", Example: trainingExample, CSRF: s.csrfToken("training")}
	if s.src.SubmitTraining == nil {
		d.Disabled = "training submission is not wired in this process"
	}
	return s.runForm(r, d, func(doc []byte, check bool) (FormResult, error) {
		return s.src.SubmitTraining(r.Context(), doc, check)
	})
}

func (s *Server) modelForm(r *http.Request) (any, int, error) {
	d := FormData{Form: "model", Title: "Register a model server", Action: "/forms/model",
		Intro:      "The serving spec (YAML) as `ebbflow inference validate SPEC` checks it; registering writes it into the model store, where the servers decider (`ebbflow inference run`) launches or updates the server.",
		CheckLabel: "Validate only: register nothing", Example: modelExample, CSRF: s.csrfToken("model")}
	if s.src.RegisterModel == nil {
		d.Disabled = "model registration is not wired in this process"
	}
	return s.runForm(r, d, func(doc []byte, check bool) (FormResult, error) {
		return s.src.RegisterModel(r.Context(), doc, check)
	})
}

func (s *Server) runForm(r *http.Request, d FormData, act func(doc []byte, check bool) (FormResult, error)) (any, int, error) {
	if s.token == "" && d.Disabled == "" {
		d.Disabled = "changes are disabled: no ui.token is configured"
	}
	if r.Method != http.MethodPost {
		d.Doc = d.Example
		d.Check = true
		return d, http.StatusOK, nil
	}
	d.Doc = r.PostForm.Get("doc")
	d.Check = r.PostForm.Get("check") != ""
	if strings.TrimSpace(d.Doc) == "" {
		d.Errors = []string{"spec: must not be empty"}
		s.m.forms.WithLabelValues(d.Form, "invalid").Inc()
		return d, http.StatusUnprocessableEntity, nil
	}
	if d.Disabled != "" {
		return nil, http.StatusServiceUnavailable, errors.New("ui: " + d.Disabled)
	}
	res, err := act([]byte(d.Doc), d.Check)
	if err != nil {
		d.Errors = flatten(err)
		s.m.forms.WithLabelValues(d.Form, "invalid").Inc()
		s.log.Info("ui: form refused", "form", d.Form, "err", err)
		return d, http.StatusUnprocessableEntity, nil
	}
	s.m.forms.WithLabelValues(d.Form, "ok").Inc()
	s.log.Info("ui: form done", "form", d.Form, "summary", res.Summary, "check", d.Check)
	d.Result = &res
	return d, http.StatusOK, nil
}

// flatten lists a joined error's parts, one line each.
func flatten(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

var funcs = template.FuncMap{
	"time": fmtTime,
	"ago": func(now time.Time, ms int64) string {
		d := now.Sub(time.UnixMilli(ms)).Round(time.Second)
		if d < 0 {
			return "in " + (-d).String()
		}
		return d.String() + " ago"
	},
	"num":    fmtNum,
	"f1":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f2":     func(v float64) string { return fmt.Sprintf("%.2f", v) },
	"pct":    func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) },
	"q":      urlQuery,
	"anchor": anchor,
	"dir":    direction,
	"join":   strings.Join,
	"timeline": func(tl PoolTimeline) template.HTML {
		return timelineSVG(tl)
	},
	"inputs": func(m map[string]float64) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sortStrings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + fmtNum(m[k])
		}
		return strings.Join(parts, " ")
	},
}

func urlQuery(s string) string { return url.QueryEscape(s) }

// anchor makes an id usable as an HTML id and fragment.
func anchor(id string) string {
	var b strings.Builder
	for _, r := range id {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// timelineSVG draws a node's pools as coloured spans.
func timelineSVG(tl PoolTimeline) template.HTML {
	const w, h = 520, 22
	if len(tl.Spans) == 0 {
		return ""
	}
	t0, t1 := tl.Spans[0].From, tl.Spans[len(tl.Spans)-1].To
	span := float64(max(t1-t0, 1))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" role="img" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg"><title>%s: pool over time</title>`, w, h, w, h, esc(tl.Node))
	for _, sp := range tl.Spans {
		x := float64(w) * float64(sp.From-t0) / span
		ww := max(float64(w)*float64(sp.To-sp.From)/span, 1)
		fmt.Fprintf(&b, `<rect class="pool-%s" x="%.1f" y="2" width="%.1f" height="%d"><title>%s from %s to %s</title></rect>`,
			esc(sp.Pool), x, ww, h-4, esc(sp.Pool), fmtTime(sp.From), fmtTime(sp.To))
		if ww > 60 {
			fmt.Fprintf(&b, `<text x="%.1f" y="15">%s</text>`, x+4, esc(sp.Pool))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
