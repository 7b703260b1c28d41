package problem

import "net/http"

// Recorder is the hub's one status-recording http.ResponseWriter: a
// middleware or handler wraps the writer it was given, serves through the
// Recorder and then reads what was answered, for its audit record, metrics
// and monitor events. It records the final status, the body bytes written
// and, when the answer was written by Write or WriteError anywhere below it,
// the problem's stable code.
//
// It hides nothing of the writer it wraps: Unwrap lets
// http.ResponseController reach the underlying Flush, Hijack and deadlines,
// and Flush implements http.Flusher for code that type-asserts. A Recorder is
// used by one request's goroutine, like the writer it wraps.
type Recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	code   string
}

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

// WriteHeader records the first final status (an informational 1xx other
// than 101 may precede it) and passes it on.
func (r *Recorder) WriteHeader(status int) {
	if r.status == 0 && (status >= 200 || status == http.StatusSwitchingProtocols) {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

// Write records an implicit 200 when no status was written and counts the
// bytes the wrapped writer accepted.
func (r *Recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client (committing a 200 when no status
// was written), if the wrapped writer can flush.
func (r *Recorder) Flush() {
	if err := http.NewResponseController(r.ResponseWriter).Flush(); err == nil && r.status == 0 {
		r.status = http.StatusOK
	}
}

// Unwrap returns the wrapped writer (for http.ResponseController).
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Status is the status the client got: the one written, or 200 when the
// handler wrote nothing (net/http then answers 200 with an empty body).
func (r *Recorder) Status() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Bytes is the number of body bytes written.
func (r *Recorder) Bytes() int64 { return r.bytes }

// Code is the stable code of the problem written through the Recorder, ""
// when the answer was not a problem written by Write.
func (r *Recorder) Code() string { return r.code }

// noteCode tells every Recorder in w's chain of wrappers the code of the
// problem being written.
func noteCode(w http.ResponseWriter, code string) {
	for w != nil {
		if rec, ok := w.(*Recorder); ok && rec.code == "" {
			rec.code = code
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

var (
	_ http.Flusher                              = (*Recorder)(nil)
	_ interface{ Unwrap() http.ResponseWriter } = (*Recorder)(nil)
)
