package hub

// Version and Commit are set at build time with
// -ldflags "-X github.com/shanghai-mca/mzhub/hub.Version=v1.2.3 -X github.com/shanghai-mca/mzhub/hub.Commit=abc123".
// Without them, the module build info is used where available.
var (
	Version = "dev"
	Commit  = "unknown"
)
