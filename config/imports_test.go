package config

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/config/structdoc"
)

// TestImportsNoService keeps the dependency one way: services import
// config to register their sections; config imports no service (nor the
// hub or a command), directly or through another package.
func TestImportsNoService(t *testing.T) {
	seen := map[string]bool{}
	var walk func(path, dir string, via []string)
	walk = func(path, dir string, via []string) {
		if seen[path] {
			return
		}
		seen[path] = true
		for _, banned := range []string{"/services/", "/hub", "/cmd/"} {
			if strings.HasPrefix(path, structdoc.ModulePath+banned) {
				t.Errorf("config imports %s (via %s)", path, strings.Join(via, " → "))
			}
		}
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			if rel, ok := strings.CutPrefix(imp, structdoc.ModulePath+"/"); ok {
				walk(imp, filepath.Join("..", filepath.FromSlash(rel)), append(via, imp))
			}
		}
	}
	walk(structdoc.ModulePath+"/config", ".", []string{structdoc.ModulePath + "/config"})
	if len(seen) < 5 {
		t.Fatalf("walked %d packages: the walk is broken", len(seen))
	}
}
