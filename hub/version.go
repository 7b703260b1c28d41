package hub

import "runtime/debug"

// Version and Commit name the running build. A release build stamps them
// (deploy/build.sh):
//
//	-ldflags "-X github.com/shanghai-mca/mzhub/hub.Version=v1.2.3 -X github.com/shanghai-mca/mzhub/hub.Commit=<git sha>"
//
// When a value was not stamped, it is filled at start from what the Go
// toolchain recorded in the binary: the module version (a pseudo-version such
// as v0.0.0-20261202031508-13f3774abcde+dirty when built from a git clone) and
// vcs.revision, with "+dirty" appended when vcs.modified is true. Go records
// those with -buildvcs (the default for `go build` in a clone when git is on
// the PATH); otherwise they stay "dev" and "unknown". They are not changed
// after start.
var (
	Version = "dev"
	Commit  = "unknown"
)

func init() {
	if bi, ok := debug.ReadBuildInfo(); ok {
		Version, Commit = fromBuildInfo(Version, Commit, bi)
	}
}

// fromBuildInfo returns version and commit, each replaced by the build
// info's value when it still has its unstamped default.
func fromBuildInfo(version, commit string, bi *debug.BuildInfo) (string, string) {
	if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	if commit != "unknown" {
		return version, commit
	}
	var revision string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision == "" {
		return version, commit
	}
	if modified {
		revision += "+dirty"
	}
	return version, revision
}
