package hub

import (
	"io"
	"log/slog"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// LogFormatFor returns the log format for "auto": text on a terminal, JSON otherwise.
func LogFormatFor(tty bool) string {
	if tty {
		return "text"
	}
	return "json"
}

// NewLogger returns a masking slog logger writing to w at level ("debug", "info",
// "warn", "error") in format ("json" or "text"; "auto" means json).
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	// Every log line passes the masking handler: no whole ID, account or
	// phone number reaches a log, whoever wrote the line.
	return slog.New(mask.NewHandler(h))
}
