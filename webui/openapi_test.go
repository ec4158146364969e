package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/go-chi/chi/v5"

	"github.com/mohproject/moh/internal/status"
)

// The wire is checked against the embedded OpenAPI document in every
// webui test: newEnv wraps the server's handler in specCheck, which
// validates each response to a documented operation (status, headers,
// content type and, for JSON, the body against its schema) and fails the
// test that caused a mismatch. Requests are not validated: tests send
// wrong requests on purpose, and what the server answers them is what the
// spec must describe.

// specDoc is the parsed spec and its router, loaded once.
var specDoc = sync.OnceValues(func() (routers.Router, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiSpec)
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
	}
	return legacy.NewRouter(doc)
})

func init() {
	// Non-JSON bodies are read as opaque strings: the spec gives them no
	// schema beyond their content type, which ValidateResponse checks.
	for _, ct := range []string{"text/html", "audio/mpeg", "audio/wav"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

// specSeen counts the validated responses per "METHOD path status", for
// TestMain's coverage line.
var (
	specMu   sync.Mutex
	specSeen = map[string]int{}
)

// maxCheckedBody bounds the copy of a response body kept for validation;
// a longer body (audio) has its status, headers and type checked only.
const maxCheckedBody = 1 << 20

// specCheck wraps h so that every response to an operation the spec
// documents is validated against it.
func specCheck(t testing.TB, h http.Handler) http.Handler {
	router, err := specDoc()
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, params, err := router.FindRoute(r)
		if err != nil { // not a documented operation (a 404 probe, a wrong method)
			h.ServeHTTP(w, r)
			return
		}
		tw := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tw, r)
		if tw.status == 0 {
			tw.status = http.StatusOK
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{
				Request:    r,
				PathParams: params,
				Route:      route,
			},
			Status: tw.status,
			Header: tw.wireHeader(),
			Options: &openapi3filter.Options{
				IncludeResponseStatus: true, // an undocumented status is a mismatch
				ExcludeResponseBody:   tw.truncated,
				MultiError:            true,
			},
		}
		in.SetBodyBytes(tw.body.Bytes())
		key := fmt.Sprintf("%s %s %d", r.Method, route.Path, tw.status)
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("OpenAPI mismatch: %s %s answered %d (operation %s): %v\nbody: %.500s",
				r.Method, r.URL.Path, tw.status, route.Operation.OperationID, err, tw.body.Bytes())
			return
		}
		specMu.Lock()
		specSeen[key]++
		specMu.Unlock()
	})
}

// teeWriter passes a response through and keeps its status and the start
// of its body. Unwrap lets http.ResponseController reach the connection
// (flushes, deadlines) as without it.
type teeWriter struct {
	http.ResponseWriter
	status    int
	body      bytes.Buffer
	truncated bool
}

func (w *teeWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if room := maxCheckedBody - w.body.Len(); room < len(b) {
		w.truncated = true
		w.body.Write(b[:max(room, 0)])
	} else {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wireHeader is the header as sent: net/http sniffs a body's type when
// the handler set none, without putting it in the handler's Header map.
func (w *teeWriter) wireHeader() http.Header {
	h := w.Header()
	if _, set := h["Content-Type"]; set || w.body.Len() == 0 {
		return h
	}
	h = h.Clone()
	h.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	return h
}

// TestMain prints, with -v, which documented responses the suite checked
// against the spec and which it never produced.
func TestMain(m *testing.M) {
	code := m.Run()
	if testing.Verbose() {
		printSpecCoverage(os.Stdout)
	}
	os.Exit(code)
}

func printSpecCoverage(out io.Writer) {
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if json.Unmarshal(openapiSpec, &doc) != nil {
		return
	}
	var documented, missed []string
	for p, ops := range doc.Paths {
		for m, op := range ops {
			for st := range op.Responses {
				k := strings.ToUpper(m) + " " + p + " " + st
				documented = append(documented, k)
				if specSeen[k] == 0 {
					missed = append(missed, k)
				}
			}
		}
	}
	total := 0
	for _, n := range specSeen {
		total += n
	}
	sort.Strings(missed)
	fmt.Fprintf(out, "openapi: %d responses validated against the spec; %d of %d documented responses seen; not produced by any test: %s\n",
		total, len(documented)-len(missed), len(documented), strings.Join(missed, ", "))
}

// TestOpenAPICoversRoutes walks the real router and the embedded spec
// against each other: every route is documented, and nothing documented
// is missing from the router.
func TestOpenAPICoversRoutes(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW, opts: func(o *Options) {
		o.Metrics = http.NotFoundHandler() // so /metrics is routed
	}})
	var spec struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiSpec, &spec); err != nil {
		t.Fatalf("spec is not JSON: %v", err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", spec.OpenAPI)
	}
	inSpec := map[string]bool{}
	for p, ops := range spec.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			inSpec[strings.ToUpper(m)+" "+p] = true
		}
	}
	inRouter := map[string]bool{}
	err := chi.Walk(e.srv.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.ReplaceAll(route, "/*/", "/")
		if strings.HasSuffix(route, "/*") {
			route = strings.TrimSuffix(route, "*") + "{file}"
		}
		inRouter[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing, extra []string
	for k := range inRouter {
		if !inSpec[k] {
			// chi registers Handle() for every method; the spec lists the
			// ones that mean something.
			if strings.HasPrefix(k, "GET ") || !isHandleAll(k, inRouter) {
				missing = append(missing, k)
			}
		}
	}
	for k := range inSpec {
		if !inRouter[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes missing from the spec: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("spec paths with no route: %v", extra)
	}
	if len(inRouter) < 25 {
		t.Fatalf("walked only %d routes", len(inRouter))
	}

	// And the spec is served, without auth.
	resp, body := e.do(nil, "GET", "/api/v1/openapi.json", nil, nil)
	if resp.StatusCode != 200 || !json.Valid(body) {
		t.Fatalf("GET openapi.json: %d", resp.StatusCode)
	}
}

// isHandleAll reports whether path k was registered for all methods (by
// r.Handle), which shows up as every method in the walk.
func isHandleAll(k string, routes map[string]bool) bool {
	_, path, _ := strings.Cut(k, " ")
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
		if !routes[m+" "+path] {
			return false
		}
	}
	return true
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t, envOpts{password: testPW})
	for path, ctype := range map[string]string{
		"/static/app.js":      "text/javascript",
		"/static/app.css":     "text/css",
		"/static/favicon.svg": "image/svg+xml",
	} {
		resp, body := e.do(nil, "GET", path, nil, nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) < 100 {
			t.Errorf("%s: %d %q %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, p := range []string{"/static/", "/static/nope.js", "/static/../server.go"} {
		if resp, _ := e.do(nil, "GET", p, nil, nil); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	// The page references only what exists and nothing off the box.
	c, _ := e.login(testPW)
	_, page := e.do(c, "GET", "/", nil, nil)
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllSubmatch(page, -1) {
		ref := string(m[1])
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("page references %q, not a path on this box", ref)
			continue
		}
		if resp, _ := e.do(c, "GET", ref, nil, nil); resp.StatusCode != 200 {
			t.Errorf("page references %s: %d", ref, resp.StatusCode)
		}
	}
}

// captureTB records what specCheck reports instead of failing the test.
type captureTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (c *captureTB) Helper() {}

func (c *captureTB) Errorf(format string, args ...any) {
	c.mu.Lock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

// TestSpecCheckCatchesMismatch: the validating middleware reports a body
// that breaks its schema and a status the spec does not list, naming the
// request, the status and the reason, and passes a response that fits.
func TestSpecCheckCatchesMismatch(t *testing.T) {
	answer := func(status int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, body)
		})
	}
	for _, c := range []struct {
		name   string
		status int
		body   string
		want   []string // in the report; none: no report
	}{
		{"fits", 200, `{"free_bytes":1,"total_bytes":2,"warning":false}`, nil},
		{"warning as a string", 200, `{"free_bytes":1,"total_bytes":2,"warning":"low"}`,
			[]string{"GET /api/v1/disk", "answered 200", "getDisk", "warning"}},
		{"undocumented status", 418, `{"error":{"code":"x","message":"y"}}`,
			[]string{"GET /api/v1/disk", "answered 418", "status is not supported"}},
		{"error shape broken", 401, `{"error":"nope"}`,
			[]string{"GET /api/v1/disk", "answered 401", "error"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctb := &captureTB{TB: t}
			ts := httptest.NewServer(specCheck(ctb, answer(c.status, c.body)))
			resp, err := http.Get(ts.URL + "/api/v1/disk")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ts.Close() // waits for the handler, and so for its check
			report := strings.Join(ctb.errs, "\n")
			if c.want == nil {
				if report != "" {
					t.Fatalf("a fitting response was reported: %s", report)
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(report, w) {
					t.Errorf("report %q lacks %q", report, w)
				}
			}
		})
	}
}

// TestOpenAPIStatusDocumented: every field the status document can carry
// (every struct field filled in, every optional one present) is a
// property the spec's Status schema names, at every depth, so a field
// added to status.Doc without documenting it fails here.
func TestOpenAPIStatusDocumented(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiSpec)
	if err != nil {
		t.Fatal(err)
	}
	var d status.Doc
	fillAll(reflect.ValueOf(&d).Elem())
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var missing []string
	undocumented(doc.Components.Schemas["Status"].Value, v, "Status", &missing)
	if len(missing) > 0 {
		t.Errorf("status fields not in the spec's Status schema: %v\n(document: %s)", missing, b)
	}
	if len(b) < 200 {
		t.Fatalf("filled status document is only %s", b)
	}
}

// undocumented appends the paths of object members in v that schema s
// does not name.
func undocumented(s *openapi3.Schema, v any, path string, out *[]string) {
	if s == nil {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if p, ok := s.Properties[k]; ok {
				undocumented(p.Value, child, path+"."+k, out)
				continue
			}
			if ap := s.AdditionalProperties.Schema; ap != nil {
				undocumented(ap.Value, child, path+"."+k, out)
				continue
			}
			if len(s.Properties) > 0 || s.AdditionalProperties.Has == nil {
				*out = append(*out, path+"."+k)
			}
		}
	case []any:
		if s.Items != nil {
			for _, child := range x {
				undocumented(s.Items.Value, child, path+"[]", out)
			}
		}
	}
}

// fillAll sets every field reachable from v to a non-zero value, so that
// omitempty members are encoded too.
func fillAll(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillAll(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillAll(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillAll(v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillAll(k)
		fillAll(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	}
}

// TestOpenAPILoginAnswers drives the login form's refusals through the
// validating server (the throttling tests call the handler directly):
// a wrong password is 401, a throttled address 429 with Retry-After.
func TestOpenAPILoginAnswers(t *testing.T) {
	e := newEnv(t, envOpts{opts: func(o *Options) { setCheapPassword(t, o.DataDir, testPW) }})
	c := noRedirect(newJar())
	_, page := e.do(c, "GET", "/login", nil, nil)
	m := hiddenCSRF.FindSubmatch(page)
	if m == nil {
		t.Fatal("no form token in the login page")
	}
	form := url.Values{"password": {"wrong"}, "csrf": {string(m[1])}}.Encode()
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	var codes []int
	for range 6 {
		resp, _ := e.do(c, "POST", "/login", strings.NewReader(form), hdr)
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[401 401 401 401 401 429]" {
		t.Fatalf("wrong logins answered %v", codes)
	}
}
