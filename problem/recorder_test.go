package problem

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRecorder(t *testing.T) {
	tests := []struct {
		name      string
		handler   func(w http.ResponseWriter, r *http.Request)
		wantCode  int
		wantBytes int64
		wantProb  string
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, 200, 0, ""},
		{"body only", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }, 200, 5, ""},
		{"status then body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "ok")
		}, 201, 2, ""},
		{"first status wins", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
			w.WriteHeader(http.StatusInternalServerError)
		}, 204, 0, ""},
		{"informational first", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusAccepted)
		}, 202, 0, ""},
		{"problem", func(w http.ResponseWriter, r *http.Request) { Write(w, r, NotFound("no such hall")) }, 404, -1, CodeNotFound},
		{"error", func(w http.ResponseWriter, r *http.Request) { WriteError(w, r, io.ErrUnexpectedEOF) }, 500, -1, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			rec := NewRecorder(w)
			tt.handler(rec, httptest.NewRequest("GET", "/x", nil))
			if rec.Status() != tt.wantCode || rec.Code() != tt.wantProb {
				t.Errorf("status %d code %q, want %d %q", rec.Status(), rec.Code(), tt.wantCode, tt.wantProb)
			}
			if tt.wantBytes < 0 {
				tt.wantBytes = int64(w.Body.Len())
			}
			if rec.Bytes() != tt.wantBytes || int64(w.Body.Len()) != tt.wantBytes {
				t.Errorf("bytes %d (body %d), want %d", rec.Bytes(), w.Body.Len(), tt.wantBytes)
			}
		})
	}
}

// TestRecorderNested: a problem written below two Recorders (a guard's and
// an API's) is seen by both.
func TestRecorderNested(t *testing.T) {
	outer := NewRecorder(httptest.NewRecorder())
	inner := NewRecorder(outer)
	Write(inner, nil, Forbidden("no"))
	if outer.Code() != CodeForbidden || inner.Code() != CodeForbidden || outer.Status() != 403 || inner.Status() != 403 {
		t.Fatalf("outer %d %q, inner %d %q", outer.Status(), outer.Code(), inner.Status(), inner.Code())
	}
}

// TestRecorderKeepsWriterFeatures: http.Flusher and http.ResponseController
// reach the wrapped writer through the Recorder.
func TestRecorderKeepsWriterFeatures(t *testing.T) {
	w := httptest.NewRecorder()
	rec := NewRecorder(w)
	var f http.Flusher = rec
	f.Flush()
	if !w.Flushed || rec.Status() != 200 {
		t.Fatalf("flush did not reach the writer: flushed %v status %d", w.Flushed, rec.Status())
	}

	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := NewRecorder(w)
		// Deadlines exist only on the server's own writer: reached through Unwrap.
		got <- http.NewResponseController(rec).SetWriteDeadline(time.Now().Add(time.Minute))
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-got; err != nil {
		t.Fatalf("SetWriteDeadline through the Recorder: %v", err)
	}
}
