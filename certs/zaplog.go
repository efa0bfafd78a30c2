package certs

import (
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap.Logger, which certmagic requires, that writes
// to log. certmagic narrates every step at info level ("acquiring lock",
// "using ACME account", …); those lines go to debug, so that scoregate's
// own info lines (one per state change, logged from certmagic's events)
// are what an operator reads. certmagic's warnings and errors keep their
// level: some failures, such as an unwritable storage directory, are only
// reported that way.
func newZapLogger(log zerolog.Logger) *zap.Logger {
	return zap.New(&zerologCore{log: log})
}

// zerologCore is a zapcore.Core that writes to a zerolog.Logger. The field
// "certmagic" carries zap's logger name, such as "obtain" or "renew".
type zerologCore struct {
	log    zerolog.Logger
	fields []zapcore.Field // from With; never mutated after creation
}

func zerologLevel(l zapcore.Level) zerolog.Level {
	switch {
	case l < zapcore.WarnLevel:
		return zerolog.DebugLevel
	case l == zapcore.WarnLevel:
		return zerolog.WarnLevel
	default:
		// A library never panics or exits on a log line: DPanic, Panic
		// and Fatal are logged as errors.
		return zerolog.ErrorLevel
	}
}

// Enabled implements zapcore.LevelEnabler.
func (c *zerologCore) Enabled(l zapcore.Level) bool {
	zl := zerologLevel(l)
	return zl >= c.log.GetLevel() && zl >= zerolog.GlobalLevel()
}

// With implements zapcore.Core.
func (c *zerologCore) With(fields []zapcore.Field) zapcore.Core {
	all := make([]zapcore.Field, 0, len(c.fields)+len(fields))
	all = append(append(all, c.fields...), fields...)
	return &zerologCore{log: c.log, fields: all}
}

// Check implements zapcore.Core.
func (c *zerologCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write implements zapcore.Core.
func (c *zerologCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	for k, v := range enc.Fields {
		if d, ok := v.(time.Duration); ok {
			enc.Fields[k] = d.String() // "1m0s", not zerolog's milliseconds
		}
	}
	ev := c.log.WithLevel(zerologLevel(e.Level))
	if name := strings.TrimPrefix(e.LoggerName, "."); name != "" {
		ev = ev.Str(keyCertmagic, name)
	}
	ev.Fields(enc.Fields).Msg(e.Message)
	return nil
}

// Sync implements zapcore.Core; zerolog writes through.
func (c *zerologCore) Sync() error { return nil }
