#!/bin/sh
# Builds the Kubernetes control plane the tests run (tests/kubernetes) from source, once,
# into a cache outside the clone, and prints the directory holding the binaries:
#
#   bin=$(tools/kubernetes/build.sh)     # etcd kube-apiserver kube-controller-manager
#                                        # kube-scheduler kubectl kwok kwokctl metrics-server
#
# Versions are pinned in the wrapper modules' go.mod files next to this script (and their
# hashes in go.sum); tools/kubernetes/pin.sh regenerates them. Each component is built
# into $HERMIT_CACHE_DIR/kubernetes/<component>-<version>-<hash>/ (the hash covers its go.mod,
# go.sum, the Go version and the build flags)
# (HERMIT_CACHE_DIR defaults to ~/.cache/hermit), so a cached component starts at once
# and a change of version builds anew. Go's own build cache for these builds lives there
# too (go-build/), the downloaded modules in Go's module cache (go env GOMODCACHE).
# Builds run under nice. Progress goes to stderr, the directory to stdout.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null || { echo "build.sh: go not found: Go 1.26 or newer is needed" >&2; exit 1; }
cache=${HERMIT_CACHE_DIR:-$HOME/.cache/hermit}/kubernetes
mkdir -p "$cache"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export GOCACHE="$cache/go-build"

# Only one build at a time (two test runs starting together wait for each other).
exec 9>"$cache/.lock"
flock 9

version_of() {  # module-dir module-path
    (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}
key_of() {  # module-dir go-build-args...: what the binaries are made of
    dir=$1; shift
    { cat "$here/$dir/go.mod" "$here/$dir/go.sum"; echo "$(go env GOVERSION) $*"; } | sha256sum | cut -c1-12
}

# build module-dir version binary... -- go-build-args... : builds into the cache unless there
build() {
    dir=$1 version=$2; shift 2
    out="$cache/$dir-$version-$(key_of "$dir" "$@")"
    if [ -f "$out/.complete" ]; then
        echo "$out"
        return
    fi
    echo "building $dir $version into $out (the first build takes many minutes)" >&2
    rm -rf "$out.tmp"
    mkdir -p "$out.tmp/bin"
    start=$(date +%s)
    (cd "$here/$dir" && nice -n 19 go build -o "$out.tmp/bin/" "$@") >&2
    echo "built $dir $version in $(($(date +%s) - start)) s" >&2
    touch "$out.tmp/.complete"
    rm -rf "$out"
    mv "$out.tmp" "$out"
    echo "$out"
}

components=${*:-kubernetes etcd kwok metrics-server}
dirs=
for c in $components; do
    case $c in
    kubernetes)
        v=$(version_of kubernetes k8s.io/kubernetes)
        # "v1.37.2" -> major 1, minor 37: what clients (helm's kubeVersion, kwokctl) read.
        minor=${v#v1.}
        minor=${minor%%.*}
        ldflags="-s -w"
        for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            ldflags="$ldflags -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
            ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
        done
        d=$(build kubernetes "$v" -ldflags "$ldflags" \
            k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
            k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
        ;;
    etcd)
        v=$(version_of etcd go.etcd.io/etcd/server/v3)
        # the server's package main is the module's root; its binary is named etcd
        d=$(build etcd "$v" -ldflags "-s -w" go.etcd.io/etcd/server/v3)
        [ -x "$d/bin/etcd" ] || mv "$d/bin/v3" "$d/bin/etcd" 2>/dev/null || mv "$d/bin/server" "$d/bin/etcd"
        ;;
    kwok)
        v=$(version_of kwok sigs.k8s.io/kwok)
        d=$(build kwok "$v" -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${v#v}" \
            sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl)
        ;;
    metrics-server)
        v=$(version_of metrics-server sigs.k8s.io/metrics-server)
        d=$(build metrics-server "$v" -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$v" \
            sigs.k8s.io/metrics-server/cmd/metrics-server)
        ;;
    *)
        echo "build.sh: unknown component $c" >&2
        exit 2
        ;;
    esac
    dirs="$dirs $d"
done

# One directory of links to the cached binaries, named after what it holds.
bin="$cache/bin-$(echo "$dirs" | sha256sum | cut -c1-12)"
if [ ! -d "$bin" ]; then
    mkdir -p "$bin.tmp"
    for d in $dirs; do
        for f in "$d"/bin/*; do ln -sf "$f" "$bin.tmp/"; done
    done
    rm -rf "$bin"
    mv "$bin.tmp" "$bin"
fi
echo "$bin"
