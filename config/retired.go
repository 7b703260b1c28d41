package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrRetiredKey is returned for a configuration that still sets a key
// that was removed; the error says what replaces it.
var ErrRetiredKey = errors.New("key removed")

// retired lists removed keys (dotted paths) with what replaces each. A
// file or an environment variable that still sets one is refused with
// that migration, rather than with a bare unknown-key error or, for a
// variable, silently ignored.
var retired = map[string]string{
	"http.max_body_bytes":    "the partner API has one body limit: set security.partner_api.max_body_bytes (default 1048576, 1 MiB) instead",
	"funeral.max_body_bytes": "the partner API has one body limit: set security.partner_api.max_body_bytes (default 1048576, 1 MiB) instead",
}

// checkRetired reports every retired key the YAML document sets, with its
// line and migration. A document that does not parse is left to the
// decoder, which names the problem.
func checkRetired(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	var errs []error
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			if how, ok := retired[path]; ok {
				errs = append(errs, fmt.Errorf("line %d: %s: %w: %s", k.Line, path, ErrRetiredKey, how))
				continue
			}
			walk(v, path)
		}
	}
	walk(doc.Content[0], "")
	return errors.Join(errs...)
}

// checkRetiredEnv reports every environment variable that would set a
// retired key.
func checkRetiredEnv(getenv func(string) string) error {
	paths := make([]string, 0, len(retired))
	for p := range retired {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var errs []error
	for _, p := range paths {
		if getenv(EnvName(p)) != "" {
			errs = append(errs, fmt.Errorf("%s (%s): %w: %s", EnvName(p), p, ErrRetiredKey, strings.TrimSpace(retired[p])))
		}
	}
	return errors.Join(errs...)
}
