package main

// The "test" subcommand lives in cmd_testrun.go: a file named cmd_test.go
// would be a Go test file and never be part of the binary.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	// Route tests decode the http endpoints of routes; the kind registers in
	// init (connectors/all should import it too).
	_ "github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/routes"
)

func init() {
	register(command{name: "test", summary: "run route tests (*_test.yaml next to routes) and mapping tests", run: runTests})
}

func runTests(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded profile); gives the default paths")
	verbose := fs.Bool("v", false, "print every case")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: mzhub test [--config FILE] [-v] [PATH ...]")
		fmt.Fprintln(env.Stderr, "\nRuns route test files (*_test.yaml: inputs, mocked sinks, expected outputs) and the tests")
		fmt.Fprintln(env.Stderr, "declared in mapping files (*.mapping.yaml). PATH is a file or a directory (searched")
		fmt.Fprintln(env.Stderr, "recursively); default: paths.routes and paths.mappings of the configuration.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	paths := fs.Args()
	if len(paths) == 0 {
		cfg, err := loadConfig(env, *cfgPath)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		paths = []string{cfg.Paths.Routes, cfg.Paths.Mappings}
	}
	var routeTests, mappingFiles []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		if !st.IsDir() {
			if strings.HasSuffix(p, ".mapping.yaml") {
				mappingFiles = append(mappingFiles, p)
			} else {
				routeTests = append(routeTests, p)
			}
			continue
		}
		_ = filepath.WalkDir(p, func(f string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			switch n := d.Name(); {
			case strings.HasSuffix(n, "_test.yaml") || strings.HasSuffix(n, "_test.yml"):
				routeTests = append(routeTests, f)
			case strings.HasSuffix(n, ".mapping.yaml"):
				mappingFiles = append(mappingFiles, f)
			}
			return nil
		})
	}
	sort.Strings(routeTests)
	sort.Strings(mappingFiles)
	failed, passed := 0, 0
	report := func(file, name string, fails []string) {
		if len(fails) == 0 {
			passed++
			if *verbose {
				fmt.Fprintf(env.Stdout, "ok    %s: %s\n", file, name)
			}
			return
		}
		failed++
		fmt.Fprintf(env.Stdout, "FAIL  %s: %s\n", file, name)
		for _, f := range fails {
			fmt.Fprintf(env.Stdout, "      %s\n", f)
		}
	}
	for _, f := range routeTests {
		res, err := routes.RunTestFile(ctx, f)
		if err != nil {
			report(f, "(file)", []string{err.Error()})
			continue
		}
		for _, r := range res {
			report(f, r.Name, r.Failures)
		}
	}
	for _, f := range mappingFiles {
		m, err := mappings.LoadMappingFile(f)
		if err != nil {
			report(f, "(load)", []string{err.Error()})
			continue
		}
		for i := range m.Tests {
			got, want, err := m.RunTest(ctx, i)
			var fails []string
			switch {
			case err != nil:
				fails = []string{err.Error()}
			case !bytes.Equal(got, want):
				fails = []string{fmt.Sprintf("output differs from the expected file (%d bytes, want %d)%s", len(got), len(want), firstDiff(got, want))}
			}
			report(f, fmt.Sprintf("test %d", i+1), fails)
		}
	}
	fmt.Fprintf(env.Stdout, "%d passed, %d failed (%d route test files, %d mapping files)\n", passed, failed, len(routeTests), len(mappingFiles))
	if failed > 0 {
		return 1
	}
	return 0
}

// firstDiff describes the first differing line.
func firstDiff(got, want []byte) string {
	g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; i < len(g) && i < len(w); i++ {
		if !bytes.Equal(g[i], w[i]) {
			return fmt.Sprintf("; line %d: got %q, want %q", i+1, g[i], w[i])
		}
	}
	return ""
}
