package mappings

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// Mapping converts records of a source layout into a target layout. It is
// immutable after loading and safe for concurrent use; each conversion
// keeps its own state in a Converter.
type Mapping struct {
	// Name is the mapping name.
	Name string
	// File is the path of the mapping file in its loader.
	File string
	// Source and Target are the layouts.
	Source, Target *Layout
	// Params are the default parameters.
	Params map[string]string
	// Tests are the example conversions declared in the file.
	Tests []MappingTestSpec

	filter *vm.Program
	// envFields are the source detail fields used by expressions; only
	// they are put in the expression environment.
	envFields []int
	header    []rule
	detail    []rule
	loader    *Loader
}

type rule struct {
	dst      int
	src      int // copy from this source field, or -1
	prog     *vm.Program
	when     *vm.Program
	value    string
	hasValue bool
}

func compileMapping(ld *Loader, name string, spec *MappingSpec, lines func(...any) int) (*Mapping, []Problem, error) {
	var probs []Problem
	bad := func(line int, format string, args ...any) {
		probs = append(probs, Problem{line, fmt.Sprintf(format, args...)})
	}
	if spec.Kind != "mapping" {
		bad(lines("kind"), "kind is %q, want mapping", spec.Kind)
	}
	m := &Mapping{Name: spec.Name, File: name, Params: spec.Params, Tests: spec.Tests, loader: ld}
	dir := path.Dir(name)
	var err error
	if m.Source, err = ld.Layout(path.Join(dir, spec.Source)); err != nil {
		bad(lines("source"), "source layout %q: %v", spec.Source, shortErr(err))
	}
	if m.Target, err = ld.Layout(path.Join(dir, spec.Target)); err != nil {
		bad(lines("target"), "target layout %q: %v", spec.Target, shortErr(err))
	}
	if len(probs) > 0 {
		return nil, probs, nil
	}
	params := map[string]string{}
	for k := range spec.Params {
		params[k] = ""
	}
	detailEnv := envSample(m.Source.Detail, params)
	m.envFields = usedFields(m.Source.Detail, append([]string{spec.Filter}, ruleExprs(spec.Detail)...))
	if spec.Filter != "" {
		p, err := expr.Compile(spec.Filter, expr.Env(detailEnv), expr.AsBool())
		if err != nil {
			bad(lines("filter"), "filter: %v", err)
		}
		m.filter = p
	}
	var headerEnv map[string]any
	if m.Source.Header != nil {
		headerEnv = envSample(m.Source.Header, params)
	} else {
		headerEnv = map[string]any{"params": params}
	}
	if len(spec.Header) > 0 && m.Target.Header == nil {
		bad(lines("header"), "target layout has no header record")
	}
	if m.Target.Header != nil {
		m.header = compileRules(m.Source.Header, m.Target.Header, spec.Header, headerEnv, false, func(i int, p ...any) int {
			return lines(append([]any{"header", i}, p...)...)
		}, bad)
	}
	m.detail = compileRules(m.Source.Detail, m.Target.Detail, spec.Detail, detailEnv, spec.ByCanonical, func(i int, p ...any) int {
		return lines(append([]any{"detail", i}, p...)...)
	}, bad)
	return m, probs, nil
}

func compileRules(src, dst *Schema, specs []RuleSpec, env map[string]any, byCanon bool, at func(int, ...any) int, bad func(int, string, ...any)) []rule {
	var rules []rule
	done := map[int]bool{}
	for i, rs := range specs {
		r := rule{src: -1, dst: dst.Index(rs.Target)}
		if r.dst < 0 {
			bad(at(i, "target"), "target field %q is not in the target %s record", rs.Target, dst.Kind)
			continue
		}
		n := 0
		if rs.From != "" {
			n++
			if src == nil || src.Index(rs.From) < 0 {
				bad(at(i, "from"), "source field %q is not in the source record", rs.From)
				continue
			}
			r.src = src.Index(rs.From)
		}
		if rs.Expr != "" {
			n++
			p, err := expr.Compile(rs.Expr, expr.Env(env))
			if err != nil {
				bad(at(i, "expr"), "expr: %v", err)
				continue
			}
			r.prog = p
		}
		if rs.Value != "" {
			n++
			r.value, r.hasValue = rs.Value, true
		}
		if n != 1 {
			bad(at(i), "rule for %s needs exactly one of from, expr, value", rs.Target)
			continue
		}
		if rs.When != "" {
			p, err := expr.Compile(rs.When, expr.Env(env), expr.AsBool())
			if err != nil {
				bad(at(i, "when"), "when: %v", err)
				continue
			}
			r.when = p
		}
		done[r.dst] = true
		rules = append(rules, r)
	}
	if byCanon && src != nil {
		for j := range dst.Fields {
			f := &dst.Fields[j]
			if done[j] || f.Type == TypeConstant || f.Aggregate != "" {
				continue
			}
			si := -1
			if f.Canonical != "" {
				si = src.CanonicalIndex(f.Canonical)
			}
			if si < 0 {
				si = src.Index(f.Name)
			}
			if si >= 0 {
				rules = append(rules, rule{dst: j, src: si})
			}
		}
	}
	return rules
}

// envSample is an expression environment with a zero value of the right Go
// type for every field: string for text, int64 for integers and amounts
// (fen), time.Time for dates.
func envSample(s *Schema, params map[string]string) map[string]any {
	env := map[string]any{"params": params}
	for i := range s.Fields {
		env[s.Fields[i].Name] = goZero(&s.Fields[i])
	}
	return env
}

func goZero(f *Field) any {
	switch f.Type {
	case TypeInteger, TypeAmount:
		return int64(0)
	case TypeDate, TypeTime, TypeDateTime:
		return time.Time{}
	}
	return ""
}

var identRE = regexp.MustCompile(`[\p{L}_][\p{L}\p{N}_]*`)

// usedFields returns the fields of s whose names occur as identifiers in
// the expressions (a superset of what they read).
func usedFields(s *Schema, exprs []string) []int {
	names := map[string]bool{}
	for _, e := range exprs {
		for _, id := range identRE.FindAllString(e, -1) {
			names[id] = true
		}
	}
	out := []int{}
	for i := range s.Fields {
		if names[s.Fields[i].Name] {
			out = append(out, i)
		}
	}
	return out
}

func ruleExprs(rules []RuleSpec) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Expr, r.When)
	}
	return out
}

// fillEnv sets env to the values of rec (all fields).
func fillEnv(env map[string]any, rec *Record) {
	fillEnvFields(env, rec, nil)
}

// fillEnvFields sets env to the values of the listed fields of rec, or of
// all fields when idx is nil.
func fillEnvFields(env map[string]any, rec *Record, idx []int) {
	s := rec.schema
	n := len(s.Fields)
	if idx != nil {
		n = len(idx)
	}
	for k := 0; k < n; k++ {
		i := k
		if idx != nil {
			i = idx[k]
		}
		f := &s.Fields[i]
		v := rec.Values[i]
		switch f.Type {
		case TypeInteger, TypeAmount:
			env[f.Name] = v.Int
		case TypeDate, TypeTime, TypeDateTime:
			if v.Set {
				env[f.Name] = TimeOf(f.Type, v.Int)
			} else {
				env[f.Name] = time.Time{}
			}
		default:
			env[f.Name] = v.Str
		}
	}
}

// apply fills dst from src with rules. env is nil when no rule needs it.
func applyRules(rules []rule, src, dst *Record, env map[string]any) error {
	for _, r := range rules {
		if r.when != nil {
			ok, err := expr.Run(r.when, env)
			if err != nil {
				return fmt.Errorf("%w: field %s: when: %v", ErrField, dst.schema.Fields[r.dst].Name, err)
			}
			if b, _ := ok.(bool); !b {
				dst.Values[r.dst] = Value{}
				continue
			}
		}
		var err error
		switch {
		case r.src >= 0:
			err = convertValue(src, r.src, dst, r.dst)
		case r.hasValue:
			err = dst.setText(r.dst, r.value)
		default:
			var out any
			out, err = expr.Run(r.prog, env)
			if err == nil {
				err = setFromExpr(dst, r.dst, out)
			}
		}
		if err != nil {
			f := &dst.schema.Fields[r.dst]
			if f.Sensitive != "" {
				// Conversion errors quote values: keep only the kind.
				err = fmt.Errorf("%w: cannot set a valid %s value", ErrField, f.Type)
			}
			return &FieldError{Kind: dst.Kind, Field: f.Name, Err: err}
		}
	}
	return nil
}

func setFromExpr(dst *Record, i int, out any) error {
	switch x := out.(type) {
	case nil:
		dst.Values[i] = Value{}
		return nil
	case int:
		return dst.SetAt(i, int64(x))
	case float64:
		if x != float64(int64(x)) {
			return fmt.Errorf("%w: expression gave a fraction %v; compute in integer fen", ErrField, x)
		}
		return dst.SetAt(i, int64(x))
	case bool:
		if x {
			return dst.setText(i, "true")
		}
		return dst.setText(i, "false")
	}
	return dst.SetAt(i, out)
}

// convertValue copies source field si into target field di, converting
// between types and between code tables (through the hub value).
func convertValue(src *Record, si int, dst *Record, di int) error {
	sf, df := &src.schema.Fields[si], &dst.schema.Fields[di]
	v := src.Values[si]
	if !v.Set {
		dst.Values[di] = Value{}
		return nil
	}
	switch {
	case sf.Type.numeric() && df.Type.numeric():
		switch {
		case sf.Type == df.Type || (sf.date == nil && df.date == nil):
		case sf.Type == TypeDate && df.Type == TypeDateTime:
			v.Int *= 1000000
		case sf.Type == TypeDateTime && df.Type == TypeDate:
			v.Int /= 1000000
		default:
			return fmt.Errorf("%w: cannot convert %s to %s", ErrField, sf.Type, df.Type)
		}
		dst.Values[di] = v
		return nil
	case sf.Type.numeric():
		return dst.setText(di, src.Text(si))
	case df.Type.numeric():
		return dst.setText(di, v.Str)
	}
	s := v.Str
	if sf.Codes != nil && sf.Codes != df.Codes {
		if e, ok := sf.Codes.Lookup(s); ok {
			s = e.Value
		}
	}
	if df.Codes != nil && sf.Codes != df.Codes {
		if c, ok := df.Codes.CodeFor(s); ok {
			s = c
		}
	}
	dst.Values[di] = Value{Str: s, Set: true}
	return nil
}

// RunTest runs the mapping's i-th declared test: it converts the input
// and returns the output and the expected bytes. The caller compares them
// (mzhub test, the package tests).
func (m *Mapping) RunTest(ctx context.Context, i int) (got, want []byte, err error) {
	if i < 0 || i >= len(m.Tests) {
		return nil, nil, fmt.Errorf("mappings: %s: no test %d", m.Name, i)
	}
	t := m.Tests[i]
	dir := path.Dir(m.File)
	in, err := fs.ReadFile(m.loader.fsys, path.Join(dir, t.Input))
	if err != nil {
		return nil, nil, fmt.Errorf("mappings: %s: test input: %w", m.Name, err)
	}
	want, err = fs.ReadFile(m.loader.fsys, path.Join(dir, t.Expect))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("mappings: %s: test expectation: %w", m.Name, err)
	}
	var out bytes.Buffer
	var rejects []string
	res, err := m.Convert(ctx, bytes.NewReader(in), &out, ConvertOptions{Params: t.Params, OnReject: func(r Reject) {
		if !r.Warning {
			rejects = append(rejects, r.String())
		}
	}})
	if err != nil {
		return out.Bytes(), want, err
	}
	if len(rejects) > 0 {
		return out.Bytes(), want, fmt.Errorf("mappings: %s: test %d: %d rejects: %s", m.Name, i, len(rejects), strings.Join(rejects, "; "))
	}
	if res.CheckErr != nil {
		return out.Bytes(), want, fmt.Errorf("mappings: %s: test %d: %w", m.Name, i, res.CheckErr)
	}
	return out.Bytes(), want, nil
}
