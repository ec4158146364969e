package logfwd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Handler is a slog.Handler that passes every record to the handler it
// wraps and forwards those at or above a level (warnings and errors by
// default: info-level chatter would cost the collector more than it
// tells) to a Forwarder.
type Handler struct {
	inner slog.Handler
	fwd   *Forwarder
	level slog.Leveler
	attrs string // pre-rendered attrs of With, " k=v k=v"
	group string // prefix of With's group, "g."
}

// NewHandler wraps inner.
func NewHandler(inner slog.Handler, fwd *Forwarder, level slog.Leveler) *Handler {
	if level == nil {
		level = slog.LevelWarn
	}
	return &Handler{inner: inner, fwd: fwd, level: level}
}

func (h *Handler) forwards(l slog.Level) bool { return l >= h.level.Level() }

// Enabled is true when either end wants the record.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.forwards(l) || h.inner.Enabled(ctx, l)
}

// Handle writes r to the inner handler if it wants it, and queues it for
// the collector if it is at or above the level. Queueing never blocks.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.inner.Enabled(ctx, r.Level) {
		err = h.inner.Handle(ctx, r)
	}
	if h.forwards(r.Level) {
		var b strings.Builder
		b.WriteString(r.Message)
		b.WriteString(h.attrs)
		r.Attrs(func(a slog.Attr) bool {
			writeAttr(&b, h.group, a)
			return true
		})
		h.fwd.Send(Message{Time: r.Time, Severity: severity(r.Level), MsgID: "log", Text: b.String()})
	}
	return err
}

// WithAttrs keeps attrs for both ends.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(attrs)
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		writeAttr(&b, h.group, a)
	}
	c.attrs = b.String()
	return &c
}

// WithGroup qualifies later attrs for both ends.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.inner = h.inner.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

// writeAttr renders a as " key=value", quoting values with spaces, the
// way slog's text handler does, so a collector's parsers read both alike.
func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			writeAttr(b, g, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(group + a.Key)
	b.WriteByte('=')
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \"=\t") {
		fmt.Fprintf(b, "%q", v)
	} else {
		b.WriteString(v)
	}
}

// severity maps slog's levels onto RFC 5424's.
func severity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return SevError
	case l >= slog.LevelWarn:
		return SevWarning
	case l >= slog.LevelInfo:
		return SevInfo
	}
	return SevDebug
}
