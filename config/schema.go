package config

import (
	"encoding/json"
	"reflect"

	"github.com/shanghai-mca/mzhub/config/structdoc"
)

// Schema returns a JSON Schema (draft 2020-12) of the configuration file,
// generated from the structs and their doc comments under root, for editors
// and for validating files outside the binary. Registered sections are
// included.
func Schema(root string) ([]byte, error) { return schema(Default(), root) }

func schema(def Config, root string) ([]byte, error) {
	doc := def.document()
	docs, err := structdoc.Collect(root, doc.fieldTypes()...)
	if err != nil {
		return nil, err
	}
	var node func(t reflect.Type, v reflect.Value) (map[string]any, error)
	node = func(t reflect.Type, v reflect.Value) (map[string]any, error) {
		if t == durationType {
			return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, "default": v.Interface().(interface{ String() string }).String()}, nil
		}
		switch t.Kind() {
		case reflect.String:
			return map[string]any{"type": "string", "default": v.String()}, nil
		case reflect.Bool:
			return map[string]any{"type": "boolean", "default": v.Bool()}, nil
		case reflect.Int, reflect.Int32, reflect.Int64:
			return map[string]any{"type": "integer", "default": v.Int()}, nil
		case reflect.Float64:
			return map[string]any{"type": "number", "default": v.Float()}, nil
		case reflect.Slice:
			items, err := node(t.Elem(), reflect.Zero(t.Elem()))
			if err != nil {
				return nil, err
			}
			delete(items, "default")
			return map[string]any{"type": "array", "items": items}, nil
		case reflect.Map:
			items, err := node(t.Elem(), reflect.Zero(t.Elem()))
			if err != nil {
				return nil, err
			}
			delete(items, "default")
			return map[string]any{"type": "object", "additionalProperties": items}, nil
		case reflect.Struct:
		default:
			return map[string]any{}, nil
		}
		props := map[string]any{}
		for _, f := range structdoc.Fields(v, "") {
			p, err := node(f.Type, f.Value)
			if err != nil {
				return nil, err
			}
			if d := structdoc.OneLine(docOf(docs, f)); d != "" {
				p["description"] = d
			}
			props[f.Name] = p
		}
		return map[string]any{"type": "object", "additionalProperties": false, "properties": props}, nil
	}
	s, err := node(doc.v.Type(), doc.v)
	if err != nil {
		return nil, err
	}
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://mzhub.example/schemas/config.schema.json"
	s["title"] = "mzhub configuration"
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
