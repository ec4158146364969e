package webui

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

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
