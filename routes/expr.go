package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// exprEnv is what route expressions see. Field names are the expression
// names (body.name, headers["x"], key, vars.bank, ...).
type exprEnv struct {
	// Body is the JSON-decoded body, or the body as a string when it is not JSON.
	Body any `expr:"body"`
	// Raw is the body as a string.
	Raw string `expr:"raw"`
	// Headers are the message headers.
	Headers map[string]string `expr:"headers"`
	// Key is the ordering key.
	Key string `expr:"key"`
	// IdempotencyKey is the message's idempotency key.
	IdempotencyKey string `expr:"idempotency_key"`
	// Vars are the route's constants.
	Vars map[string]string `expr:"vars"`
	// Item is the current element in a split or the parts of an aggregate.
	Item any `expr:"item"`
}

// exprOptions are shared by every compiled expression.
func exprOptions(extra ...expr.Option) []expr.Option {
	opts := []expr.Option{
		expr.Env(exprEnv{}),
		expr.Function("sha256", func(p ...any) (any, error) {
			sum := sha256.Sum256([]byte(fmt.Sprint(p[0])))
			return hex.EncodeToString(sum[:]), nil
		}, new(func(any) string)),
		expr.Function("mask", func(p ...any) (any, error) {
			return maskValue(fmt.Sprint(p[0])), nil
		}, new(func(any) string)),
	}
	return append(opts, extra...)
}

// maskValue masks a value for display: a resident ID number keeps its
// region and last 4 characters, anything else (an account, a card) its last 4.
func maskValue(s string) string {
	if mask.ValidID(s) {
		return mask.IDNumber(s)
	}
	return mask.Account(s)
}

// program is a compiled expression.
type program struct {
	src string
	p   *vm.Program
}

// compileExpr compiles src; kind is "bool", "string" or "any".
func compileExpr(src, kind string) (*program, error) {
	var opts []expr.Option
	switch kind {
	case "bool":
		opts = exprOptions(expr.AsBool())
	default:
		opts = exprOptions()
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	return &program{src: src, p: p}, nil
}

func (p *program) run(env *exprEnv) (any, error) {
	out, err := expr.Run(p.p, env)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", p.src, err)
	}
	return out, nil
}

func (p *program) bool(env *exprEnv) (bool, error) {
	v, err := p.run(env)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}

func (p *program) string(env *exprEnv) (string, error) {
	v, err := p.run(env)
	if err != nil {
		return "", err
	}
	return stringOf(v), nil
}

// stringOf renders an expression result as a key or header value.
func stringOf(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d", int64(x))
		}
		return fmt.Sprint(x)
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

// newEnv decodes the body once for the expressions of one message.
func newEnv(m *msgState, vars map[string]string) *exprEnv {
	return &exprEnv{
		Body:           m.parsed(),
		Raw:            string(m.msg.Body),
		Headers:        m.msg.Headers,
		Key:            m.msg.Key,
		IdempotencyKey: m.msg.IdempotencyKey,
		Vars:           vars,
	}
}
