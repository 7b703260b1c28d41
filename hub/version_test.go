package hub

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	const rev = "13f3774abcdef0123456789abcdef0123456789a"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name                    string
		version, commit         string
		main                    string
		settings                []debug.BuildSetting
		wantVersion, wantCommit string
	}{
		{"no vcs info (-buildvcs=false)", "dev", "unknown", "(devel)", nil, "dev", "unknown"},
		{"clean clone", "dev", "unknown", "v0.0.0-20261202031508-13f3774abcde", vcs("false"), "v0.0.0-20261202031508-13f3774abcde", rev},
		{"dirty clone", "dev", "unknown", "v0.0.0-20261202031508-13f3774abcde+dirty", vcs("true"), "v0.0.0-20261202031508-13f3774abcde+dirty", rev + "+dirty"},
		{"stamped release wins", "v1.2.0", "13f3774", "v0.0.0-20261202031508-13f3774abcde+dirty", vcs("true"), "v1.2.0", "13f3774"},
		{"go install module@version", "dev", "unknown", "v1.2.0", nil, "v1.2.0", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/shanghai-mca/mzhub", Version: tc.main}, Settings: tc.settings}
			v, c := fromBuildInfo(tc.version, tc.commit, bi)
			if v != tc.wantVersion || c != tc.wantCommit {
				t.Fatalf("fromBuildInfo = %q, %q; want %q, %q", v, c, tc.wantVersion, tc.wantCommit)
			}
		})
	}
}
