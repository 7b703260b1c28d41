package console_test

import (
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/monitor/console"
)

// consolePages are every page of the console, for the zh-CN completeness
// test and the browser test.
var consolePages = []string{
	"/console/", "/console/matrix", "/console/screen", "/console/calendar", "/console/batches",
	"/console/batches?batch=deduction-2026-10", "/console/batches?batch=allowance-2026-11",
	"/console/search", "/console/search?batch=allowance-2026-11", "/console/search?ref=YWTB0000001005",
	"/console/exchange/allowance-2026-11%2Fbank.boc%2Fsend", "/console/failures", "/console/alerts",
	"/console/charts?window=24h", "/console/charts?window=7d", "/console/quality", "/console/topology", "/console/accounts",
	"/console/funeral/", "/console/no-such-page",
}

// sectionFixture stands in for services/funeral's operational view: it
// writes its content with the frame's dictionary.
func sectionFixture() http.Handler {
	t := template.Must(template.New("s").Parse(`<table><tr><th>{{.T "partner"}}</th><th>{{.T "fun_last_sync"}}</th></tr><tr><td>{{.Partner "funeral.fh01"}}</td><td>—</td></tr></table>`))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := console.FrameFrom(r.Context())
		if !ok {
			http.Error(w, "no frame", http.StatusInternalServerError)
			return
		}
		if r.URL.Query().Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ok":true}`))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = t.Execute(w, f)
	})
}

// fullServer is a console with every optional part and a mounted section.
func fullServer(t *testing.T) *httptest.Server {
	t.Helper()
	d := full(t, &recorder{})
	d.Cycles = newFakeCycles()
	d.Accounts = newFakeAccounts()
	c, err := console.New(d)
	if err != nil {
		t.Fatal(err)
	}
	c.Mount("nav_funeral", "funeral/", sectionFixture())
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", c))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var (
	tags       = regexp.MustCompile(`(?s)<script.*?</script>|<style.*?</style>|<[^>]*>`)
	enSpans    = regexp.MustCompile(`(?s)<(span|code)[^>]*lang="en"[^>]*>.*?</(span|code)>|<code[^>]*>.*?</code>`)
	msgKeyLike = regexp.MustCompile(`\b(nav|cycle|reason|act|band|screen|stage|fun|op|issue|payment|alert)_[a-z_]+\b`)
)

// TestEveryPageIsChinese renders every console page in zh-CN and fails on
// any identifier the dictionary misses (the pages list them), any message
// key shown as is, and any English dictionary phrase in the visible text.
func TestEveryPageIsChinese(t *testing.T) {
	srv := fullServer(t)
	english := console.EnglishNames()
	for _, path := range consolePages {
		t.Run(path, func(t *testing.T) {
			code, body := get(t, srv, path)
			if code != 200 && !(code == 404 && strings.Contains(path, "no-such")) {
				t.Fatalf("status %d: %.300s", code, body)
			}
			checkChinese(t, body, english)
			if !strings.Contains(body, `href="/console/static/console.css"`) {
				t.Errorf("the page does not link the console's style sheet under /console/: %.400s", body)
			}
			if dir := os.Getenv("MZHUB_CONSOLE_DUMP"); dir != "" {
				name := strings.NewReplacer("/", "_", "?", "_", "%", "_", "&", "_", "=", "_").Replace(path)
				_ = os.WriteFile(filepath.Join(dir, name+".html"), []byte(body), 0o644)
			}
		})
	}
}

// checkChinese fails on a zh-CN page that is not one, lists untranslated
// identifiers, shows a message key as is or an English dictionary phrase
// outside the parts marked English.
func checkChinese(t *testing.T, body string, english []string) {
	t.Helper()
	if !strings.Contains(body, `lang="zh-CN"`) {
		t.Errorf("not a zh-CN page: %.200s", body)
	}
	if i := strings.Index(body, "data-untranslated="); i >= 0 {
		t.Errorf("untranslated: %.300s", body[i:])
	}
	text := tags.ReplaceAllString(enSpans.ReplaceAllString(body, " "), " ")
	if k := msgKeyLike.FindString(text); k != "" {
		t.Errorf("message key %q shows as is", k)
	}
	for _, e := range english {
		if strings.Contains(text, e) {
			t.Errorf("English %q in the zh-CN page", e)
		}
	}
}
