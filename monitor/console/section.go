package console

import (
	"bytes"
	"context"
	"html/template"
	"net/http"
	"strings"
)

// Frame is what a handler mounted with Console.Mount finds in its
// request's context: the page's language and the console's dictionary,
// so that its content reads like every other console page. The handler
// writes only its content (an HTML fragment); the console puts it inside
// its layout (header, navigation, language switch, footer).
type Frame struct {
	p *page
}

type frameKey struct{}

// FrameFrom returns the console frame of a request the console passes to
// a mounted section; ok is false when the handler is called on its own
// (it then serves a whole page of its own).
func FrameFrom(ctx context.Context) (*Frame, bool) {
	f, ok := ctx.Value(frameKey{}).(*Frame)
	return f, ok
}

// Lang is the page's language: "zh-CN" or "en".
func (f *Frame) Lang() string {
	if f.p.L == 1 {
		return "en"
	}
	return "zh-CN"
}

// Base is the console's mount point as the browser sees it ("/console/").
func (f *Frame) Base() string { return f.p.Base }

// T translates a message key of the console's dictionary.
func (f *Frame) T(key string) string { return f.p.T(key) }

// Partner names a partner id (the dictionary, or the registry's name).
func (f *Frame) Partner(id string) string { return f.p.PartnerText(id) }

// SetTitle sets the page title to a message key (default: the section's
// navigation key).
func (f *Frame) SetTitle(key string) { f.p.Title = key }

// Link lists a page the hub serves beside the console (path under
// /console/, e.g. "portal/", behind the console's guard there) in the
// console's navigation under the message key navKey.
func (c *Console) Link(navKey, path string) {
	c.mu.Lock()
	c.sections = append(c.sections, navItem{navKey, strings.Trim(path, "/") + "/"})
	c.mu.Unlock()
}

// Mount serves h at path (e.g. "funeral/") inside the console: listed in
// its navigation under the message key navKey, behind the console's auth,
// and with h's HTML answers placed inside the console's layout. h finds
// the Frame in its request's context. Answers of other types (JSON, CSV)
// and redirects pass through unchanged. Mount may be called while the
// console serves.
func (c *Console) Mount(navKey, path string, h http.Handler) {
	path = strings.Trim(path, "/") + "/"
	c.mu.Lock()
	c.sections = append(c.sections, navItem{navKey, path})
	c.mu.Unlock()
	c.mux.Handle("/"+path, http.StripPrefix("/"+strings.TrimSuffix(path, "/"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.section(w, r, navKey, path, h)
	})))
}

// capture buffers a section's answer.
type capture struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (x *capture) Header() http.Header { return x.h }
func (x *capture) Write(b []byte) (int, error) {
	if x.status == 0 {
		x.status = http.StatusOK
	}
	return x.buf.Write(b)
}
func (x *capture) WriteHeader(s int) {
	if x.status == 0 {
		x.status = s
	}
}

func (c *Console) section(w http.ResponseWriter, r *http.Request, navKey, path string, h http.Handler) {
	p := c.newPage(w, r, navKey)
	// newPage saw the section's prefix as part of the mount point.
	if b, ok := strings.CutSuffix(p.Base, path); ok {
		p.Base = b
	}
	f := &Frame{p: p}
	x := &capture{h: http.Header{}}
	h.ServeHTTP(x, r.WithContext(context.WithValue(r.Context(), frameKey{}, f)))
	if x.status == 0 {
		x.status = http.StatusOK
	}
	if !strings.HasPrefix(x.h.Get("Content-Type"), "text/html") || x.status >= 300 && x.status < 400 {
		for k, v := range x.h {
			w.Header()[k] = v
		}
		w.WriteHeader(x.status)
		_, _ = w.Write(x.buf.Bytes())
		return
	}
	p.Body = template.HTML(x.buf.String()) // the section's own template output
	c.renderStatus(w, p, "section", x.status)
}
