// Package console serves the web console (web/, built by Vite into dist/) from
// assets embedded in the control plane binary. A clean clone builds without the
// console (dist/ holds only a placeholder): Handler then answers a page that says
// how to build it (`make web`). Built assets are never committed; `make build`,
// `make run` and `make test` build them first.
//
// Routing: files under dist/ are served as they are (hashed assets under
// /assets/ with a year-long immutable cache); any other GET path that looks like a
// page (no file extension) answers index.html so the console's client-side routes
// are permalinks. API paths (/v1/, /healthz, ...) are registered before this handler
// on the same mux and never reach it.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// Built reports whether the binary embeds a built console.
func Built() bool {
	_, err := fs.Stat(dist, "dist/index.html")
	return err == nil
}

// notBuilt is served at / when the binary was built without the console.
const notBuilt = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>FlagForge console not built</title></head>
<body><main><h1>The FlagForge console is not built into this binary</h1>
<p>Run <code>make web</code> (or <code>make build</code> / <code>make run</code>), then rebuild the control plane.
The API is served as usual under <code>/v1/</code>.</p></main></body></html>
`

// securityHeaders are set on every console response: the console loads nothing
// from elsewhere and is never framed.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// Handler serves the console for GET and HEAD requests.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at compile time: cannot fail
	}
	files := http.FileServerFS(sub)
	built := Built()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		securityHeaders(w.Header())
		if !built {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(notBuilt))
			return
		}
		p := path.Clean("/" + r.URL.Path)
		name := strings.TrimPrefix(p, "/")
		if name != "" && name != "index.html" {
			if st, err := fs.Stat(sub, name); err == nil && !st.IsDir() {
				if strings.HasPrefix(name, "assets/") {
					w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				}
				files.ServeHTTP(w, r)
				return
			}
			if path.Ext(name) != "" {
				http.NotFound(w, r)
				return
			}
		}
		// index.html for / and every client-side route.
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	})
}
