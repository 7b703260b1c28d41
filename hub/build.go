package hub

import "fmt"

// ErrNotInThisBuild is the error of a configuration that needs a client the
// embedded-only build leaves out (what: the setting, client: what is missing).
func ErrNotInThisBuild(what, client string) error {
	return fmt.Errorf("%s: this is the embedded-only build of mzhub (mzhub-embedded-*, -tags mzhub_embedded), without %s: run the full build (mzhub-<os>-<arch>) for the cluster profile", what, client)
}
