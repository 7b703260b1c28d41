#!/usr/bin/env bash
# Release build of mzhub: static, reproducible, stamped.
#
#   deploy/build.sh [-o DIR] [TARGET ...]      TARGET is GOOS/GOARCH; default: all four below
#
# Each binary is built with
#   CGO_ENABLED=0 go build -trimpath -buildvcs=true
#     -ldflags "-s -w -X .../hub.Version=$VERSION -X .../hub.Commit=$COMMIT"
# into DIR (default dist/) as mzhub-GOOS-GOARCH[.exe], and once more with -tags mzhub_embedded as
# mzhub-embedded-GOOS-GOARCH[.exe]: the embedded profile only, without the Pulsar and ClickHouse
# clients (a third smaller, ~25 MiB less resident); then DIR/SHA256SUMS and DIR/SM3SUMS are
# written over every mzhub-* file in DIR (check with `sha256sum -c SHA256SUMS`; SM3 with
# `openssl dgst -sm3 FILE` or gmssl).
#
# VERSION defaults to `git describe --tags --always --dirty`, COMMIT to `git rev-parse HEAD`
# (with "+dirty" when the work tree has changes). The same commit built with the same Go
# release gives the same bytes, wherever the tree is checked out: -trimpath drops paths, the
# stamped values and the VCS info Go embeds come from the commit, and nothing reads the clock
# (a git worktree differs: Go records no VCS info there).
# .ci/run checks this by building linux/amd64 twice, the second time from an empty build cache.
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
while (($#)); do
  case $1 in
    -o) out=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "build.sh: unknown flag $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
targets=("$@")
((${#targets[@]})) || targets=(linux/amd64 linux/arm64 linux/loong64 windows/amd64)

dirty=
[[ -z $(git status --porcelain) ]] || dirty=+dirty
version=${VERSION:-$(git describe --tags --always --dirty)}
commit=${COMMIT:-$(git rev-parse HEAD)$dirty}
if [[ -f .git ]]; then
  echo "build.sh: warning: this is a git worktree, where Go records no VCS info (vcs.revision); build releases from a clone" >&2
fi
[[ -z $dirty ]] || echo "build.sh: warning: the work tree has uncommitted changes; the build is stamped $commit" >&2

pkg=github.com/shanghai-mca/mzhub/hub
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit"
mkdir -p "$out"
echo "mzhub $version ($commit) with $(go version | cut -d' ' -f3) into $out/"
for target in "${targets[@]}"; do
  goos=${target%/*} goarch=${target#*/}
  [[ $goos/$goarch == "$target" && -n $goos && -n $goarch ]] || { echo "build.sh: target $target is not GOOS/GOARCH" >&2; exit 2; }
  ext=
  [[ $goos == windows ]] && ext=.exe
  for flavour in full embedded; do
    bin=mzhub-$goos-$goarch$ext tags=
    if [[ $flavour == embedded ]]; then bin=mzhub-embedded-$goos-$goarch$ext tags=mzhub_embedded; fi
    CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch \
      go build -trimpath -buildvcs=true -tags "$tags" -ldflags "$ldflags" -o "$out/$bin" ./cmd/mzhub
    echo "  $bin"
  done
done

cd "$out"
shopt -s nullglob
bins=(mzhub-*)
sha256sum -- "${bins[@]}" >SHA256SUMS
if ! openssl dgst -sm3 /dev/null >/dev/null 2>&1; then
  echo "build.sh: openssl with SM3 (OpenSSL 1.1.1 or later) is needed for SM3SUMS" >&2; exit 1
fi
for b in "${bins[@]}"; do
  printf '%s  %s\n' "$(openssl dgst -sm3 -r -- "$b" | cut -d' ' -f1)" "$b"
done >SM3SUMS
echo "  SHA256SUMS SM3SUMS"
