package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// MaxCommandTTL bounds how far in the future a command may expire, which
// also bounds how long request ids must be remembered.
const MaxCommandTTL = 24 * time.Hour

const (
	queueDepth = 64
	workers    = 2
	// replyHeadroom keeps a reply under BrokerMessageLimit with room to
	// spare for a broker that counts more than the payload.
	replyHeadroom = 1 << 10
)

// commander answers commands: it refuses expired and malformed ones,
// answers a repeated request id with the first answer without acting
// again, and runs the rest on a small fixed pool so a flood of commands
// cannot starve playback.
type commander struct {
	a     *Agent
	queue chan job

	mu     sync.Mutex
	recent map[string]*seen
}

type job struct {
	c   mqtt.Client
	cmd Command
}

type seen struct {
	expires time.Time
	reply   []byte // nil while the command is still running
}

func newCommander(a *Agent) *commander {
	return &commander{a: a, queue: make(chan job, queueDepth), recent: map[string]*seen{}}
}

func (m *commander) start(ctx context.Context, wg *sync.WaitGroup) {
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-m.queue:
					m.run(ctx, j)
				}
			}
		}()
	}
}

// onMessage is paho's handler; it must not block, so it only validates
// and queues.
func (m *commander) onMessage(c mqtt.Client, msg mqtt.Message) {
	a := m.a
	if n := len(msg.Payload()); n > MaxCommandBytes {
		// Refused before decoding: a huge command (a reorder of a
		// million ids) would cost the box memory and CPU meant for
		// playback. Answer if the id can be found in the first bytes.
		id := peekID(msg.Payload())
		a.log.Warn("refused oversized command", "topic", msg.Topic(), "id", id, "bytes", n, "limit", MaxCommandBytes)
		if id != "" {
			m.reply(c, id, fail(CodeTooLarge, fmt.Sprintf("command of %d bytes exceeds the limit of %d bytes", n, MaxCommandBytes)), time.Time{})
		}
		return
	}
	var cmd Command
	if err := json.Unmarshal(msg.Payload(), &cmd); err != nil {
		a.log.Warn("unreadable command", "topic", msg.Topic(), "err", err)
		return // no id to answer to
	}
	if err := ValidName(cmd.ID); err != nil {
		a.log.Warn("command without a valid id", "topic", msg.Topic(), "err", err)
		return
	}
	now := a.now()
	if cmd.Expires.IsZero() {
		m.reply(c, cmd.ID, fail(CodeBadRequest, "command has no expiry"), time.Time{})
		return
	}
	if !now.Before(cmd.Expires) {
		a.log.Info("refused expired command", "id", cmd.ID, "op", cmd.Op, "expired", cmd.Expires, "when", "arrived")
		m.reply(c, cmd.ID, fail(CodeExpired, "command expired at "+cmd.Expires.UTC().Format(time.RFC3339)), time.Time{})
		return
	}
	if cmd.Expires.Sub(now) > MaxCommandTTL {
		m.reply(c, cmd.ID, fail(CodeBadRequest, "expiry more than 24h ahead"), time.Time{})
		return
	}
	m.mu.Lock()
	m.prune(now)
	if s, dup := m.recent[cmd.ID]; dup {
		r := s.reply
		m.mu.Unlock()
		if r != nil { // done: answer again, do not act again
			m.publish(c, cmd.ID, r)
		}
		return
	}
	m.recent[cmd.ID] = &seen{expires: cmd.Expires}
	m.mu.Unlock()
	select {
	case m.queue <- job{c: c, cmd: cmd}:
	default:
		m.forget(cmd.ID)
		m.reply(c, cmd.ID, fail(CodeBusy, "too many commands queued; retry"), time.Time{})
	}
}

func (m *commander) run(ctx context.Context, j job) {
	// Checked again here, not only on arrival: a command can wait in the
	// queue behind a long download, and a stale order must not run late.
	if now := m.a.now(); !now.Before(j.cmd.Expires) {
		m.a.log.Warn("refused expired command", "id", j.cmd.ID, "op", j.cmd.Op, "expired", j.cmd.Expires, "late", now.Sub(j.cmd.Expires), "when", "queued")
		m.reply(j.c, j.cmd.ID, fail(CodeExpired, "command expired at "+j.cmd.Expires.UTC().Format(time.RFC3339)+" while it waited to run"), j.cmd.Expires)
		return
	}
	r := m.exec(ctx, j.cmd)
	if r.Error != nil {
		m.a.log.Warn("command failed", "id", j.cmd.ID, "op", j.cmd.Op, "err", r.Error)
	} else {
		m.a.log.Info("command done", "id", j.cmd.ID, "op", j.cmd.Op)
	}
	m.reply(j.c, j.cmd.ID, r, j.cmd.Expires)
	if j.cmd.Op != OpStatus && j.cmd.Op != OpTracks {
		m.a.publishStatus(j.c, true)
	}
}

func fail(code, msg string) Reply { return Reply{Error: &ReplyError{Code: code, Message: msg}} }

func okResult(v any) Reply {
	if v == nil {
		return Reply{OK: true}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fail(CodeFailed, "marshal result: "+err.Error())
	}
	return Reply{OK: true, Result: b}
}

func (m *commander) exec(ctx context.Context, cmd Command) Reply {
	ops := m.a.o.Ops
	if r, ok := m.execProgramme(cmd); ok {
		return r
	}
	switch cmd.Op {
	case OpStatus:
		return okResult(ops.Status())
	case OpTracks:
		return okResult(ops.Tracks())
	case OpPlay:
		if err := ops.Play(); err != nil {
			return fail(CodeFailed, err.Error())
		}
		return okResult(nil)
	case OpStop:
		if err := ops.Stop(); err != nil {
			return fail(CodeFailed, err.Error())
		}
		return okResult(nil)
	case OpNext:
		ops.Next()
		return okResult(nil)
	case OpVolume:
		if cmd.Volume == nil || *cmd.Volume < 0 || *cmd.Volume > 100 {
			return fail(CodeBadRequest, "volume must be 0..100")
		}
		if err := ops.SetVolume(*cmd.Volume); err != nil {
			return fail(CodeFailed, err.Error())
		}
		return okResult(map[string]int{"volume": *cmd.Volume})
	case OpRemoveTrack:
		if cmd.TrackID == "" {
			return fail(CodeBadRequest, "track_id is required")
		}
		if err := ops.RemoveTrack(cmd.TrackID); err != nil {
			return fail(CodeFailed, err.Error())
		}
		return okResult(nil)
	case OpReorder:
		if err := ops.Reorder(cmd.Order); err != nil {
			return fail(CodeFailed, err.Error())
		}
		return okResult(nil)
	case OpAddTrack:
		return m.addTrack(ctx, cmd)
	case OpCertCSR:
		return m.a.certCSR(cmd)
	case OpCertInstall:
		return m.a.certInstall(ctx, cmd)
	case OpUpdate:
		return m.update(ctx, cmd)
	}
	return fail(CodeBadRequest, fmt.Sprintf("unknown op %q", cmd.Op))
}

// addTrack downloads, verifies and only then hands the file to the
// library, so nothing unverified is ever ingested.
func (m *commander) addTrack(ctx context.Context, cmd Command) Reply {
	a := m.a
	if cmd.URL == "" || cmd.SHA256 == "" {
		return fail(CodeBadRequest, "url and sha256 are required")
	}
	name := cmd.Name
	if name == "" {
		name = baseName(cmd.URL)
	}
	ctx, cancel := context.WithDeadline(ctx, cmd.Expires)
	defer cancel()
	f, err := fetchVerified(ctx, a.o.HTTPClient, cmd.URL, cmd.SHA256, a.o.TempDir, a.o.MaxTrackBytes)
	if err != nil {
		if errors.Is(err, errChecksum) {
			return fail(CodeChecksum, err.Error())
		}
		return fail(CodeDownload, err.Error())
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	id, err := a.o.Ops.AddTrack(ctx, name, f)
	if err != nil {
		return fail(CodeFailed, "add track: "+err.Error())
	}
	return okResult(map[string]string{"id": id, "name": name})
}

func baseName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "track.mp3"
	}
	b := path.Base(u.Path)
	if b == "." || b == "/" {
		return "track.mp3"
	}
	return b
}

// reply publishes r for request id and, when keep is set, remembers it
// until keep so a repeated request gets the same answer.
func (m *commander) reply(c mqtt.Client, id string, r Reply, keep time.Time) {
	r.ID, r.Device = id, m.a.o.DeviceID
	b, _ := json.Marshal(r)
	if len(b) > BrokerMessageLimit-replyHeadroom {
		// The broker would drop it without a word and the operator
		// would only see a timeout; say why instead.
		m.a.log.Warn("reply too large for the broker", "id", id, "bytes", len(b), "limit", BrokerMessageLimit)
		b, _ = json.Marshal(Reply{ID: id, Device: m.a.o.DeviceID, Error: &ReplyError{Code: CodeTooLarge,
			Message: fmt.Sprintf("reply of %d bytes exceeds the broker's message_size_limit of %d bytes", len(b), BrokerMessageLimit)}})
	}
	if !keep.IsZero() {
		m.mu.Lock()
		if s := m.recent[id]; s != nil {
			s.reply = b
		}
		m.mu.Unlock()
	}
	m.publish(c, id, b)
}

func (m *commander) publish(c mqtt.Client, id string, b []byte) {
	tok := c.Publish(ReplyTopic(m.a.o.DeviceID, id), 1, false, b)
	go func() {
		if tok.WaitTimeout(15*time.Second) && tok.Error() != nil {
			m.a.log.Warn("publish reply", "id", id, "err", tok.Error())
		}
	}()
}

func (m *commander) forget(id string) {
	m.mu.Lock()
	delete(m.recent, id)
	m.mu.Unlock()
}

// prune drops request ids whose commands have expired: a repeat of those
// is refused as expired anyway. Callers hold m.mu.
func (m *commander) prune(now time.Time) {
	for id, s := range m.recent {
		if !now.Before(s.expires) {
			delete(m.recent, id)
		}
	}
}

// peekBytes is how much of an oversized payload peekID looks at: the id
// comes first in what Client.Send publishes, and is at most 128 bytes.
const peekBytes = 1 << 10

// peekID finds the top-level "id" of a command from the first peekBytes
// of its payload, without decoding the rest, so that a payload refused
// for its size can still be answered. It returns "" when the id is not
// there or is not a valid request id.
func peekID(payload []byte) string {
	d := json.NewDecoder(bytes.NewReader(payload[:min(len(payload), peekBytes)]))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for {
		k, err := d.Token()
		if err != nil {
			return ""
		}
		key, ok := k.(string)
		if !ok {
			return "" // the object ended without an id
		}
		v, err := d.Token()
		if err != nil {
			return ""
		}
		// Matched the way json.Unmarshal matches the Command field.
		if strings.EqualFold(key, "id") {
			s, ok := v.(string)
			if !ok || ValidName(s) != nil {
				return ""
			}
			return s
		}
		if dl, ok := v.(json.Delim); ok && (dl == '{' || dl == '[') {
			for depth := 1; depth > 0; {
				t, err := d.Token()
				if err != nil {
					return ""
				}
				switch t {
				case json.Delim('{'), json.Delim('['):
					depth++
				case json.Delim('}'), json.Delim(']'):
					depth--
				}
			}
		}
	}
}
