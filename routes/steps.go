package routes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
)

// msgState is a message moving through the steps.
type msgState struct {
	msg bus.Message
	// body is the decoded body (cached).
	body    any
	decoded bool
	// targets are the sink names a switch chose (nil: every sink).
	targets []string
	// attempt is the bus delivery attempt of the message.
	attempt int
}

// parsed returns the body decoded as JSON, or as a string when it is not JSON.
func (m *msgState) parsed() any {
	if !m.decoded {
		m.decoded = true
		b := bytes.TrimSpace(m.msg.Body)
		if len(b) > 0 && (b[0] == '{' || b[0] == '[' || b[0] == '"') {
			var v any
			if err := json.Unmarshal(b, &v); err == nil {
				m.body = v
				return v
			}
		}
		m.body = string(m.msg.Body)
	}
	return m.body
}

// setBody replaces the body and forgets the decoded form.
func (m *msgState) setBody(b []byte) {
	m.msg.Body = b
	m.decoded = false
	m.body = nil
}

// child derives a message (a split part, an aggregate) from m.
func (m *msgState) child(body []byte, suffix string) *msgState {
	h := make(map[string]string, len(m.msg.Headers)+1)
	for k, v := range m.msg.Headers {
		h[k] = v
	}
	c := &msgState{msg: m.msg, targets: m.targets, attempt: m.attempt}
	c.msg.Headers = h
	c.msg.IdempotencyKey = m.msg.IdempotencyKey + suffix
	c.setBody(body)
	return c
}

// stepError is a step's refusal of a message: it will not get better by
// retrying (a validation failure, a bad expression result).
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return "step " + e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// next continues the pipeline with one message.
type next func(ctx context.Context, m *msgState) error

// step is a compiled step.
type step interface {
	name() string
	kind() string
	process(ctx context.Context, m *msgState, out next) error
}

// Mapper converts a message with a named mapping of the mapping engine.
// The hub wires the mapping engine (package mappings) through it.
type Mapper interface {
	Map(ctx context.Context, mapping string, msg bus.Message) (bus.Message, error)
}

// Requester is a connector able to answer a request (used by enrich); the
// http sink implements it.
type Requester interface {
	Request(ctx context.Context, msg bus.Message) (bus.Message, error)
}

// ---- map ----

type mapStep struct {
	n       string
	mapping string
	mapper  Mapper
	fields  []fieldProg
	body    *program
	headers []fieldProg
	vars    map[string]string
}

type fieldProg struct {
	name string
	p    *program
}

func (s *mapStep) name() string { return s.n }
func (s *mapStep) kind() string { return "map" }

func (s *mapStep) process(ctx context.Context, m *msgState, out next) error {
	switch {
	case s.mapping != "":
		if s.mapper == nil {
			return &stepError{s.n, fmt.Errorf("mapping %q: no mapping engine is wired", s.mapping)}
		}
		res, err := s.mapper.Map(ctx, s.mapping, m.msg)
		if err != nil {
			return &stepError{s.n, fmt.Errorf("mapping %s: %w", s.mapping, err)}
		}
		m.msg.Headers = res.Headers
		m.setBody(res.Body)
	case len(s.fields) > 0:
		env := newEnv(m, s.vars)
		obj := make(map[string]any, len(s.fields))
		for _, f := range s.fields {
			v, err := f.p.run(env)
			if err != nil {
				return &stepError{s.n, err}
			}
			obj[f.name] = v
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return &stepError{s.n, err}
		}
		m.setBody(b)
	case s.body != nil:
		v, err := s.body.run(newEnv(m, s.vars))
		if err != nil {
			return &stepError{s.n, err}
		}
		switch x := v.(type) {
		case string:
			m.setBody([]byte(x))
		case []byte:
			m.setBody(x)
		default:
			b, err := json.Marshal(x)
			if err != nil {
				return &stepError{s.n, err}
			}
			m.setBody(b)
		}
	}
	if len(s.headers) > 0 {
		env := newEnv(m, s.vars)
		h := make(map[string]string, len(m.msg.Headers)+len(s.headers))
		for k, v := range m.msg.Headers {
			h[k] = v
		}
		for _, f := range s.headers {
			v, err := f.p.string(env)
			if err != nil {
				return &stepError{s.n, err}
			}
			h[f.name] = v
		}
		m.msg.Headers = h
	}
	return out(ctx, m)
}

// ---- validate ----

type validateStep struct {
	n        string
	rules    []*program
	messages []string
	required []string
	drop     bool
	vars     map[string]string
}

func (s *validateStep) name() string { return s.n }
func (s *validateStep) kind() string { return "validate" }

func (s *validateStep) process(ctx context.Context, m *msgState, out next) error {
	var problems []error
	if len(s.required) > 0 {
		obj, _ := m.parsed().(map[string]any)
		for _, f := range s.required {
			v, ok := obj[f]
			if !ok || v == nil || v == "" {
				problems = append(problems, fmt.Errorf("%s is required", f))
			}
		}
	}
	if len(s.rules) > 0 {
		env := newEnv(m, s.vars)
		for i, r := range s.rules {
			ok, err := r.bool(env)
			if err != nil {
				problems = append(problems, err)
				continue
			}
			if !ok {
				msg := s.messages[i]
				if msg == "" {
					msg = "rule " + r.src + " is false"
				}
				problems = append(problems, errors.New(msg))
			}
		}
	}
	if problems != nil {
		if s.drop {
			return ErrFiltered
		}
		return &stepError{s.n, errors.Join(problems...)}
	}
	return out(ctx, m)
}

// ---- filter ----

type filterStep struct {
	n    string
	p    *program
	vars map[string]string
}

func (s *filterStep) name() string { return s.n }
func (s *filterStep) kind() string { return "filter" }

func (s *filterStep) process(ctx context.Context, m *msgState, out next) error {
	ok, err := s.p.bool(newEnv(m, s.vars))
	if err != nil {
		return &stepError{s.n, err}
	}
	if !ok {
		return ErrFiltered
	}
	return out(ctx, m)
}

// ---- split ----

type splitStep struct {
	n         string
	lines     bool
	skip      int
	skipEmpty bool
	items     *program
	vars      map[string]string
}

func (s *splitStep) name() string { return s.n }
func (s *splitStep) kind() string { return "split" }

// HeaderSplitIndex is set on each part of a split (0-based).
const HeaderSplitIndex = "mzhub-split-index"

func (s *splitStep) process(ctx context.Context, m *msgState, out next) error {
	emit := func(i int, body []byte) error {
		c := m.child(body, "#"+strconv.Itoa(i))
		c.msg.Headers[HeaderSplitIndex] = strconv.Itoa(i)
		err := out(ctx, c)
		if errors.Is(err, ErrFiltered) || errors.Is(err, errConsumed) {
			// A part dropped or kept by a later step; go on with the next.
			return nil
		}
		return err
	}
	if s.lines {
		sc := bufio.NewScanner(bytes.NewReader(m.msg.Body))
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		line, n := 0, 0
		for sc.Scan() {
			line++
			if line <= s.skip {
				continue
			}
			b := bytes.TrimRight(sc.Bytes(), "\r")
			if s.skipEmpty && len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			if err := emit(n, append([]byte(nil), b...)); err != nil {
				return err
			}
			n++
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return &stepError{s.n, err}
		}
		return nil
	}
	v, err := s.items.run(newEnv(m, s.vars))
	if err != nil {
		return &stepError{s.n, err}
	}
	arr, ok := v.([]any)
	if !ok && v != nil {
		return &stepError{s.n, fmt.Errorf("items: %T is not an array", v)}
	}
	for i, it := range arr {
		var b []byte
		if str, ok := it.(string); ok {
			b = []byte(str)
		} else if b, err = json.Marshal(it); err != nil {
			return &stepError{s.n, err}
		}
		if err := emit(i, b); err != nil {
			return err
		}
	}
	return nil
}

// ---- switch ----

type switchStep struct {
	n     string
	when  []*program
	to    [][]string
	deflt []string
	vars  map[string]string
}

func (s *switchStep) name() string { return s.n }
func (s *switchStep) kind() string { return "switch" }

func (s *switchStep) process(ctx context.Context, m *msgState, out next) error {
	env := newEnv(m, s.vars)
	for i, w := range s.when {
		ok, err := w.bool(env)
		if err != nil {
			return &stepError{s.n, err}
		}
		if ok {
			m.targets = s.to[i]
			return out(ctx, m)
		}
	}
	if len(s.deflt) == 0 {
		return ErrFiltered
	}
	m.targets = s.deflt
	return out(ctx, m)
}

// ---- enrich ----

type enrichStep struct {
	n       string
	via     Requester
	request *program
	target  string
	ttl     time.Duration
	size    int
	vars    map[string]string
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]cacheEntry
}

type cacheEntry struct {
	val any
	exp time.Time
}

func (s *enrichStep) name() string { return s.n }
func (s *enrichStep) kind() string { return "enrich" }

func (s *enrichStep) process(ctx context.Context, m *msgState, out next) error {
	req := m.msg
	if s.request != nil {
		v, err := s.request.run(newEnv(m, s.vars))
		if err != nil {
			return &stepError{s.n, err}
		}
		switch x := v.(type) {
		case string:
			req.Body = []byte(x)
		default:
			b, err := json.Marshal(x)
			if err != nil {
				return &stepError{s.n, err}
			}
			req.Body = b
		}
	}
	ck := string(req.Body)
	val, ok := s.lookup(ck)
	if !ok {
		res, err := s.via.Request(ctx, req)
		if err != nil {
			return fmt.Errorf("step %s: lookup: %w", s.n, err)
		}
		var v any
		if json.Unmarshal(res.Body, &v) != nil {
			v = string(res.Body)
		}
		val = v
		s.store(ck, v)
	}
	obj, isObj := m.parsed().(map[string]any)
	if !isObj {
		obj = map[string]any{"body": m.parsed()}
	}
	cp := make(map[string]any, len(obj)+1)
	for k, v := range obj {
		cp[k] = v
	}
	cp[s.target] = val
	b, err := json.Marshal(cp)
	if err != nil {
		return &stepError{s.n, err}
	}
	m.setBody(b)
	return out(ctx, m)
}

func (s *enrichStep) lookup(k string) (any, bool) {
	if s.ttl <= 0 {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache[k]
	if !ok || s.now().After(e.exp) {
		return nil, false
	}
	return e.val, true
}

func (s *enrichStep) store(k string, v any) {
	if s.ttl <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= s.size {
		// Evict expired entries first, then arbitrary ones, down to 90%.
		now := s.now()
		for key, e := range s.cache {
			if now.After(e.exp) {
				delete(s.cache, key)
			}
		}
		for key := range s.cache {
			if len(s.cache) < s.size*9/10 {
				break
			}
			delete(s.cache, key)
		}
	}
	s.cache[k] = cacheEntry{val: v, exp: s.now().Add(s.ttl)}
}
