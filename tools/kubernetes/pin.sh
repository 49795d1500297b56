#!/bin/sh
# Regenerates the wrapper modules under tools/kubernetes/ (go.mod and go.sum) for the
# versions given, e.g.
#
#   tools/kubernetes/pin.sh kubernetes=v1.37.2 etcd=v3.7.0 kwok=v0.8.0 \
#       metrics-server=v0.8.0 prometheus-operator=v0.86.0 keda=v2.18.0
#
# Only the components named are regenerated. The go.mod files are then the one place
# where versions are pinned: build.sh reads them back from there.
#
# Why wrappers: k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go,
# ...) at v0.0.0 and maps them to ./staging with replace lines, which Go ignores in a
# module that depends on it. The wrapper requires k8s.io/kubernetes and replaces each of
# those v0.0.0 modules with its published v0.Y.Z (the same code, tagged per release).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

gomod_of() {  # module@version: the path of its go.mod in the module cache
    go mod download -json "$1" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p'
}

# The wrapper's go directive: the one of the module it builds (never newer than needed).
go_of() {  # module@version
    sed -n 's/^go \([0-9.]*\)$/\1/p' "$(gomod_of "$1")"
}

module() {  # dir module-path
    rm -f "$here/$1/go.mod" "$here/$1/go.sum"
    mkdir -p "$here/$1"
    (cd "$here/$1" && go mod init "$2" >/dev/null 2>&1)
}

for arg in "$@"; do
    name=${arg%%=*} version=${arg#*=}
    case $name in
    kubernetes)
        dir=$here/kubernetes
        module kubernetes hermit.tools/kubernetes
        cd "$dir"
        gomod=$(gomod_of "k8s.io/kubernetes@$version")
        # "v1.37.2" -> "v0.37.2" for the staging modules.
        staging=v0.${version#v1.}
        go mod edit -require="k8s.io/kubernetes@$version"
        # The same go directive as Kubernetes itself.
        go mod edit -go="$(go_of "k8s.io/kubernetes@$version")"
        for m in $(awk '/^[ \t]*k8s\.io\/[^ ]+ v0\.0\.0$/ { print $1 }' "$gomod"); do
            go mod edit -replace="$m=$m@$staging"
        done
        go list -deps k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
            k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl >/dev/null
        go mod verify
        ;;
    etcd)
        module etcd hermit.tools/etcd
        cd "$here/etcd"
        go mod edit -require="go.etcd.io/etcd/server/v3@$version"
        go mod edit -go="$(go_of "go.etcd.io/etcd/server/v3@$version")"
        go list -deps go.etcd.io/etcd/server/v3 >/dev/null
        go mod verify
        ;;
    kwok)
        module kwok hermit.tools/kwok
        cd "$here/kwok"
        go mod edit -require="sigs.k8s.io/kwok@$version"
        go mod edit -go="$(go_of "sigs.k8s.io/kwok@$version")"
        go list -deps sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl >/dev/null
        go mod verify
        ;;
    metrics-server)
        module metrics-server hermit.tools/metrics-server
        cd "$here/metrics-server"
        go mod edit -require="sigs.k8s.io/metrics-server@$version"
        go mod edit -go="$(go_of "sigs.k8s.io/metrics-server@$version")"
        go list -deps sigs.k8s.io/metrics-server/cmd/metrics-server >/dev/null
        go mod verify
        ;;
    prometheus-operator | keda)
        # CRD manifests only: recorded in tools/kubernetes/crds/go.mod (and their zips'
        # hashes in its go.sum), fetched with `go mod download`, never built.
        [ -f "$here/crds/go.mod" ] || module crds hermit.tools/crds
        cd "$here/crds"
        case $name in
        prometheus-operator) path=github.com/prometheus-operator/prometheus-operator ;;
        keda) path=github.com/kedacore/keda/v2 ;;
        esac
        go mod edit -require="$path@$version"
        grep -v "^$path " go.sum > go.sum.new 2>/dev/null || true
        mv go.sum.new go.sum
        go mod download "$path"
        ;;
    *)
        echo "pin.sh: unknown component $name" >&2
        exit 2
        ;;
    esac
done
