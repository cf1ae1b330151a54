package api

import (
	"embed"
	"io/fs"
	"net/http"
)

// The dashboard is three hand-written files, embedded so that the binary is
// the whole installation and the page works on a farm without internet.
//
//go:embed static/index.html static/app.js static/style.css
var staticFiles embed.FS

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		// The embed pattern above guarantees the directory; this is unreachable.
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/", "/index.html", "/app.js", "/style.css":
		default:
			http.NotFound(w, r)
			return
		}
		// The files change only with the binary; revalidating each load is
		// cheap and avoids a stale page after an upgrade.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
