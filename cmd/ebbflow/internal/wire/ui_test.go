package wire

import (
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/actuators"
	"github.com/ebbflow/ebbflow/inference/servers"
	"github.com/ebbflow/ebbflow/internal/history"
	"github.com/ebbflow/ebbflow/training/scheduler"
	"github.com/ebbflow/ebbflow/ui"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// uiForms serves the UI wired as `ebbflow ui` wires it, on a local model
// store, and returns a function posting a form with a fresh CSRF token.
func uiForms(t *testing.T) (Config, func(form, doc string, check bool) *httptest.ResponseRecorder) {
	t.Helper()
	cfg := Default()
	dir := t.TempDir()
	cfg.History.Backend, cfg.History.Root = "local", dir
	cfg.Servers.StoreDir = filepath.Join(dir, "models")
	cfg.UI.Token = "tok"
	e := &Env{Cfg: cfg, Clock: actuators.WallClock{}}
	srv, err := ui.NewServer(cfg.UI, ui.NewStore(100, 100), UISources(e), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	return cfg, func(form, doc string, check bool) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/forms/"+form, nil))
		m := csrfField.FindStringSubmatch(w.Body.String())
		if m == nil {
			t.Fatalf("no csrf on /forms/%s", form)
		}
		v := url.Values{"doc": {doc}, "csrf": {html.UnescapeString(m[1])}}
		if check {
			v.Set("check", "1")
		}
		r := httptest.NewRequest(http.MethodPost, "/forms/"+form, strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", "Bearer tok")
		w = httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
}

func errorsOf(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, errorsOf(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// TestUIModelFormIsTheCLIPath: the model form shows exactly the errors
// `ebbflow inference validate` prints (ValidateServingSpec), and a valid
// spec lands in the model store where the servers decider reads it.
func TestUIModelFormIsTheCLIPath(t *testing.T) {
	cfg, post := uiForms(t)
	bad := "name: resnet50\nversion: 0\nformat: onnx\nserver: triton\ndevice: cpu\nprecision: {mode: int8}\n"
	_, verr := ValidateServingSpec(cfg, []byte(bad))
	if verr == nil {
		t.Fatal("the bad spec validates")
	}
	w := post("model", bad, false)
	if w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("bad spec: %d %s", w.Code, w.Body)
	}
	body := html.UnescapeString(w.Body.String())
	for _, e := range errorsOf(verr) {
		if !strings.Contains(body, "<li>"+e+"</li>") {
			t.Errorf("the form does not show %q", e)
		}
	}
	if _, err := os.Stat(cfg.Servers.StoreDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an invalid spec touched the store: %v", err)
	}

	good, err := os.ReadFile("../../../../inference/servers/testdata/resnet50-int8.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ValidateServingSpec(cfg, good); err != nil {
		t.Fatalf("testdata spec: %v", err)
	}
	if w := post("model", string(good), true); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "valid: resnet50 v3") {
		t.Fatalf("validate only: %d %s", w.Code, w.Body)
	}
	if _, err := os.Stat(cfg.Servers.StoreDir); !errors.Is(err, os.ErrNotExist) {
		t.Error("validate only wrote the store")
	}
	w = post("model", string(good), false)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "registered resnet50 v3") {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	entries, err := servers.ReadStore(history.LocalFS{}, cfg.Servers.StoreDir)
	if err != nil || len(entries) != 1 || string(entries[0].Doc) != string(good) || filepath.Base(entries[0].Path) != "resnet50.yaml" {
		t.Fatalf("model store after registering: %v %v", entries, err)
	}
}

// TestUITrainingFormIsTheCLIPath: the training form refuses a spec with
// the error `ebbflow training submit` gives (scheduler.Parse: field, line).
func TestUITrainingFormIsTheCLIPath(t *testing.T) {
	cfg, post := uiForms(t)
	bad := "department: research\nfamily: x\ngpus: {count: 1}\nbogus: 1\n"
	_, perr := scheduler.Parse(strings.NewReader(bad), cfg.Training)
	var se *scheduler.SpecError
	if !errors.As(perr, &se) {
		t.Fatalf("the bad spec parses: %v", perr)
	}
	w := post("training", bad, true)
	if w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("bad spec: %d %s", w.Code, w.Body)
	}
	if body := html.UnescapeString(w.Body.String()); !strings.Contains(body, "<li>"+perr.Error()+"</li>") {
		t.Errorf("the form does not show %q:\n%s", perr, body)
	}
}
