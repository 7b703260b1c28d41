package mappings

import (
	"errors"
	"fmt"

	"github.com/expr-lang/expr"
)

// compileComputed compiles the expr and when of the fields of a record,
// once per layout. Expressions see the record's other fields.
func compileComputed(s *Schema, rs *RecordSpec, at func(p ...any) int) []Problem {
	var probs []Problem
	var srcs []string
	env := envSample(s, nil)
	delete(env, "params")
	for j := range rs.Fields {
		fs := &rs.Fields[j]
		if fs.Expr == "" && fs.When == "" {
			continue
		}
		i := s.Index(fs.Name)
		if i < 0 {
			continue
		}
		f := &s.Fields[i]
		if fs.Expr != "" {
			p, err := expr.Compile(fs.Expr, expr.Env(env))
			if err != nil {
				probs = append(probs, Problem{at("fields", j, "expr"), fmt.Sprintf("field %s: expr: %v", fs.Name, err)})
				continue
			}
			f.expr = p
		}
		if fs.When != "" {
			p, err := expr.Compile(fs.When, expr.Env(env), expr.AsBool())
			if err != nil {
				probs = append(probs, Problem{at("fields", j, "when"), fmt.Sprintf("field %s: when: %v", fs.Name, err)})
				continue
			}
			f.when = p
		}
		s.computed = append(s.computed, i)
		srcs = append(srcs, fs.Expr, fs.When)
		f.checked = true
	}
	if len(s.computed) > 0 {
		s.envIdx = usedFields(s, srcs)
	}
	return probs
}

// computeFields fills the computed fields of rec (writing). env is reused.
func computeFields(rec *Record, env map[string]any) error {
	s := rec.schema
	fillEnvFields(env, rec, s.envIdx)
	for _, i := range s.computed {
		f := &s.Fields[i]
		if f.when != nil {
			ok, err := runBool(f.when, env)
			if err != nil {
				return &FieldError{Kind: rec.Kind, Field: f.Name, Err: fmt.Errorf("%w: when: %v", ErrField, err)}
			}
			if !ok {
				rec.Values[i] = Value{}
				continue
			}
		}
		if f.expr == nil {
			continue
		}
		out, err := expr.Run(f.expr, env)
		if err == nil {
			err = setFromExpr(rec, i, out)
		}
		if err != nil {
			return &FieldError{Kind: rec.Kind, Field: f.Name, Err: fmt.Errorf("%w: expr: %v", ErrField, err)}
		}
	}
	return nil
}

// checkComputed compares the computed fields of a record read with what
// their expressions give; it returns the first differing field.
func checkComputed(rec *Record, env map[string]any, scratch *Record) (int, string) {
	s := rec.schema
	copy(scratch.Values, rec.Values)
	if err := computeFields(scratch, env); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return s.Index(fe.Field), fe.Err.Error()
		}
		return -1, err.Error()
	}
	for _, i := range s.computed {
		if s.Fields[i].expr != nil && scratch.Values[i] != rec.Values[i] {
			return i, "differs from its computed value"
		}
	}
	return -1, ""
}
