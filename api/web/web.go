// Package web serves the court-facing verification page of a cunzheng node
// (/verify), builds the same page as one self-contained HTML file for
// air-gapped use (OfflinePage), and renders certificates for receipt holders
// (POST /v1/certificate).
//
// The page hashes the evidence file in the browser, incrementally, with a
// WebAssembly SHA-256 (the vendored hash-wasm build: WebCrypto cannot hash a
// stream, and Go's own SHA-256 compiled to WebAssembly ran at half its
// speed in BenchmarkHashing), and reaches its verdict with evidence/verify compiled to
// WebAssembly (package ./wasm) against the genesis fingerprint pinned in the
// page — the node only answers which records carry a digest.
//
// assets/verify.wasm and assets/wasm_exec.js are generated; run
// `go generate ./api/web` after changing evidence/verify or the toolchain.
// TestGeneratedAssetsFresh fails when they are stale.
package web

//go:generate go run ./internal/genassets -dir assets

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/cunzheng/cunzheng/evidence"
)

//go:embed assets
var assetFS embed.FS

// AssetBase is the URL path under which the page's scripts, styles and
// WebAssembly are served.
const AssetBase = "/verify/assets"

// LookupBase is the URL prefix the page appends a hex SHA-256 to.
const LookupBase = "/v1/lookup/"

// pageCSP is the Content-Security-Policy of the served page: scripts and
// styles only from the node, WebAssembly allowed, requests only to the node.
const pageCSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// servedAssets are the files under assets/ served at AssetBase, with their
// content types.
var servedAssets = map[string]string{
	"app.js":                      "text/javascript; charset=utf-8",
	"style.css":                   "text/css; charset=utf-8",
	"wasm_exec.js":                "text/javascript; charset=utf-8",
	"hash-wasm-sha256.umd.min.js": "text/javascript; charset=utf-8",
	"hash-wasm-LICENSE":           "text/plain; charset=utf-8",
	"verify.wasm":                 "application/wasm",
}

// Network is what a page pins: the genesis fingerprint and the readable
// facts of the manifest shown beside it.
type Network struct {
	Fingerprint evidence.Fingerprint
	Manifest    *evidence.Manifest
}

// NetworkFromManifestFile reads a genesis.json manifest file.
func NetworkFromManifestFile(data []byte) (Network, error) {
	m, fp, err := evidence.ParseManifestFile(data)
	if err != nil {
		return Network{}, err
	}
	return Network{Fingerprint: fp, Manifest: m}, nil
}

// NetworkFromCanonical reads a canonical (binary) genesis manifest, as
// carried in receipts and lookup answers.
func NetworkFromCanonical(data []byte) (Network, error) {
	m, err := evidence.ParseManifest(data)
	if err != nil {
		return Network{}, err
	}
	fp, err := m.Fingerprint()
	if err != nil {
		return Network{}, err
	}
	return Network{Fingerprint: fp, Manifest: m}, nil
}

type memberView struct{ Name, Role string }

type pageData struct {
	Offline    bool
	Network    string
	Origin     string
	Members    []memberView
	AssetBase  string
	LookupBase string
	// Inlined in the offline page only.
	CSS                       template.CSS
	WasmExecJS, HashJS, AppJS template.JS
	WasmBase64                string
}

func newPageData(n Network) pageData {
	d := pageData{Network: n.Fingerprint.String(), AssetBase: AssetBase, LookupBase: LookupBase}
	if n.Manifest != nil {
		d.Origin = n.Manifest.Origin
		for _, m := range n.Manifest.Members {
			d.Members = append(d.Members, memberView{m.Name, m.Role.String()})
		}
	}
	return d
}

func parsePage() (*template.Template, error) {
	return template.ParseFS(assetFS, "assets/page.html")
}

func asset(name string) []byte {
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		panic("web: embedded asset missing: " + name) // the embed pattern guarantees it
	}
	return b
}

// OfflinePage returns the verification page as one self-contained HTML
// file: the WebAssembly verifier, the hashing code and the pinned network
// are inlined, a Content-Security-Policy forbids every network request, and
// it works opened from disk. It verifies a file against its receipt.
func OfflinePage(n Network) ([]byte, error) {
	t, err := parsePage()
	if err != nil {
		return nil, fmt.Errorf("offline page: %w", err)
	}
	d := newPageData(n)
	d.Offline = true
	d.LookupBase = ""
	d.CSS = template.CSS(asset("style.css"))
	d.WasmExecJS = template.JS(asset("wasm_exec.js"))
	d.HashJS = template.JS(asset("hash-wasm-sha256.umd.min.js"))
	d.AppJS = template.JS(asset("app.js"))
	d.WasmBase64 = base64.StdEncoding.EncodeToString(asset("verify.wasm"))
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("offline page: %w", err)
	}
	return b.Bytes(), nil
}

// Options configures Register.
type Options struct {
	// Network is the node's own genesis: the page pins its fingerprint.
	Network Network
	// FontPath is a TrueType font with CJK glyphs for certificates
	// ("" = certificate.DefaultFontPath).
	FontPath string
	// PublicURL is the node's base URL printed in certificate QR codes
	// ("" = taken from each request's Host).
	PublicURL string
	Logger    *slog.Logger // nil = discard
	Now       func() time.Time
}

// Pages is the verification page, its assets and the certificate endpoint,
// ready to be registered on a node's mux.
type Pages struct {
	opts Options
	page []byte
}

// New renders the page for opts.Network.
func New(opts Options) (*Pages, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t, err := parsePage()
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	var page bytes.Buffer
	if err := t.Execute(&page, newPageData(opts.Network)); err != nil {
		return nil, fmt.Errorf("web: render page: %w", err)
	}
	return &Pages{opts: opts, page: page.Bytes()}, nil
}

// Register adds the handlers to mux (api.Config.Extra).
func (p *Pages) Register(mux *http.ServeMux) {
	pageBytes := p.page
	pageTag := etag(pageBytes)
	mux.HandleFunc("GET /verify", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", pageTag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(pageBytes))
	})
	sub, _ := fs.Sub(assetFS, "assets")
	for name, ctype := range servedAssets {
		data, err := fs.ReadFile(sub, name)
		if err != nil {
			panic("web: embedded asset missing: " + name) // the embed pattern guarantees it
		}
		tag := etag(data)
		mux.HandleFunc("GET "+path.Join(AssetBase, name), func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", ctype)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Cache-Control", "no-cache")
			h.Set("ETag", tag)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		})
	}
	mux.Handle("POST /v1/certificate", &certificateHandler{opts: p.opts})
}

func etag(b []byte) string {
	s := sha256.Sum256(b)
	return `"` + hex.EncodeToString(s[:12]) + `"`
}

// requestBase is the scheme and host the request reached, for QR codes
// when no public URL is configured.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + strings.TrimSpace(r.Host)
}
