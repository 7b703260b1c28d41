package problem

import (
	"net/http"
	"strings"
)

// Front refuses, before any handler sees them, the requests every listener
// of the hub refuses the same way: a request line plus headers over limit
// bytes gets 431 headers_too_large (and the connection closes), a path with
// dot or empty segments ("/partner/v1/../x", "//") 400 bad_path — never
// the mux's plain-text redirect. The hub and the local sandbox (mzhub
// sandbox) both put it in front, so an integrator meets the same answers
// in both.
func Front(limit int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerBytes(r) > limit {
			w.Header().Set("Connection", "close")
			Write(w, r, HeadersTooLarge(limit))
			return
		}
		if !canonicalPath(r.URL.Path) {
			Write(w, r, BadPath())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Unmatched answers requests no pattern of mux matches (unknown paths, a
// method a path does not serve) with problem+json instead of the mux's
// plain text; what a pattern matches goes to mux as is.
func Unmatched(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		c := &statusCatcher{header: http.Header{}}
		hd.ServeHTTP(c, r)
		switch c.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", c.header.Get("Allow"))
			Write(w, r, MethodNotAllowed(c.header.Get("Allow")))
		case http.StatusNotFound, 0:
			Write(w, r, NotFound("no such endpoint"))
		default: // a redirect or another answer of the mux: pass it on
			for k, v := range c.header {
				w.Header()[k] = v
			}
			w.WriteHeader(c.status)
		}
	})
}

// statusCatcher keeps the status and headers an http.Handler writes and
// drops its body.
type statusCatcher struct {
	header http.Header
	status int
}

func (c *statusCatcher) Header() http.Header { return c.header }
func (c *statusCatcher) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}
func (c *statusCatcher) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

// headerBytes is the size of the request line and headers as sent.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2 + len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// canonicalPath reports whether p (decoded) is absolute and has no ".",
// ".." or empty segments (a trailing slash is fine).
func canonicalPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
			return false
		}
	}
	return true
}
