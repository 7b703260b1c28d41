// Package deploy_test checks the deployment artifacts in this directory: the
// kustomize base (its config is the cluster profile; it builds and yields the
// Deployment) and the hardening of the systemd unit. deploy/ holds no Go code.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/configs"
)

var update = flag.Bool("update", false, "copy configs/cluster.yaml to kustomize/mzhub.yaml")

// kustomizeCLI is the kustomize the integration test runs with `go run`, so
// that the main module needs no kustomize dependency. v5.8.2 is the newest
// release that builds with Go 1.26 (v5.8.3 needs Go 1.27).
const kustomizeCLI = "sigs.k8s.io/kustomize/kustomize/v5@v5.8.2"

// TestKustomizeConfigIsClusterProfile: kustomize reads no file outside its
// directory, so the ConfigMap's mzhub.yaml is a copy of configs/cluster.yaml,
// kept equal here (go test ./deploy -update copies it).
func TestKustomizeConfigIsClusterProfile(t *testing.T) {
	const copyPath = "kustomize/mzhub.yaml"
	if *update {
		if err := os.WriteFile(copyPath, configs.Cluster, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, configs.Cluster) {
		t.Fatalf("%s differs from configs/cluster.yaml: run go test ./deploy -update", copyPath)
	}
}

// TestIntegrationKustomizeBuild builds deploy/kustomize with the kustomize
// CLI (what `kubectl kustomize` runs) and checks what a cluster would get.
func TestIntegrationKustomizeBuild(t *testing.T) {
	if os.Getenv("MZHUB_TEST_KUSTOMIZE") == "" {
		t.Skip("MZHUB_TEST_KUSTOMIZE is not set: set it to 1 to build deploy/kustomize with go run " + kustomizeCLI + " (needs the Go module proxy; .ci/run sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "run", kustomizeCLI, "build", "kustomize")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kustomize build: %v\n%s", err, stderr.String())
	}
	objs := decodeAll(t, &stdout)

	type object struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
		Spec struct {
			Template struct {
				Spec struct {
					Volumes []struct {
						Name      string `yaml:"name"`
						ConfigMap struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	byKind := map[string]object{}
	for _, n := range objs {
		var o object
		if err := n.Decode(&o); err != nil {
			t.Fatalf("decode object: %v", err)
		}
		if o.Metadata.Namespace != "mzhub" {
			t.Errorf("%s %s is in namespace %q, want mzhub", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
		byKind[o.Kind] = o
	}
	dep, ok := byKind["Deployment"]
	if !ok || dep.Metadata.Name != "mzhub" {
		t.Fatalf("no Deployment mzhub in the build output; kinds: %v", keys(byKind))
	}
	if _, ok := byKind["Service"]; !ok {
		t.Errorf("no Service in the build output")
	}
	cm, ok := byKind["ConfigMap"]
	if !ok || !strings.HasPrefix(cm.Metadata.Name, "mzhub-config-") {
		t.Fatalf("no generated ConfigMap mzhub-config-<hash>; kinds: %v", keys(byKind))
	}
	if cm.Data["mzhub.yaml"] != string(configs.Cluster) {
		t.Errorf("ConfigMap %s: mzhub.yaml is not configs/cluster.yaml", cm.Metadata.Name)
	}
	var mounted bool
	for _, v := range dep.Spec.Template.Spec.Volumes {
		mounted = mounted || v.ConfigMap.Name == cm.Metadata.Name
	}
	if !mounted {
		t.Errorf("the Deployment does not mount the generated ConfigMap %s", cm.Metadata.Name)
	}
}

// decodeAll parses a multi-document YAML stream.
func decodeAll(t *testing.T, r io.Reader) []yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(r)
	var out []yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("kustomize output is not YAML: %v", err)
		}
		out = append(out, n)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSystemdUnitHardening keeps the unit's sandbox: each directive here is
// one systemd-analyze security scores (the exposure check itself runs in
// .ci/run where systemd-analyze is installed).
func TestSystemdUnitHardening(t *testing.T) {
	f, err := os.Open("systemd/mzhub.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("not KEY=VALUE: %q", line)
			}
			unit[section+k] = append(unit[section+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"User":                    "mzhub",
		"StateDirectory":          "mzhub",
		"UMask":                   "0077",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"PrivateUsers":            "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"ProtectProc":             "invisible",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"RestrictRealtime":        "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"SystemCallFilter":        "@system-service|~@privileged @resources",
		"SystemCallErrorNumber":   "EPERM",
	} {
		vals, ok := unit["[Service]"+key]
		if got := strings.Join(vals, "|"); !ok || got != want {
			t.Errorf("[Service] %s=%q (set: %v), want %q", key, got, ok, want)
		}
	}
}
