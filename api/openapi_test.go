package api_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAPIDocumentsEveryRoute keeps api/openapi.yaml in step with the
// routes the server registers.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	spec, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	routes := regexp.MustCompile(`HandleFunc\("(GET|POST) (/[^" ]*)"`).FindAllStringSubmatch(string(src), -1)
	if len(routes) < 8 {
		t.Fatalf("found only %d routes in server.go", len(routes))
	}
	for _, r := range routes {
		path := r[2]
		path = strings.TrimSuffix(path, "/") // "/tile/" is documented by its subpaths
		path = strings.ReplaceAll(path, "{index}", "{index}")
		if !strings.Contains(string(spec), "\n  "+path) {
			t.Errorf("route %s %s is not documented in openapi.yaml", r[1], r[2])
		}
	}
}
