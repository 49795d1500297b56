# A real Kubernetes control plane for the chart and the operator. Included by
# mk/kubernetes.mk. Targets:
#
#   make kubernetes-binaries  build etcd, kube-apiserver, kube-controller-manager,
#                             kube-scheduler, kubectl, kwok, kwokctl and metrics-server from
#                             source (tools/kubernetes/build.sh), once, into
#                             $HERMIT_CACHE_DIR/kubernetes (default ~/.cache/hermit/kubernetes)
#   make test-kubernetes      start that control plane on 127.0.0.1 (kwok nodes, metrics-server)
#                             and run tests/kubernetes against it: helm install/upgrade/uninstall
#                             of charts/hermit, the operator under the chart's RBAC
#
# Versions are pinned in tools/kubernetes/*/go.mod (tools/kubernetes/pin.sh regenerates
# them). The cold build takes a quarter of an hour and more on 2 cores; see
# docs/kubernetes.md for the measured times.

KUBERNETES_TOOLS := tools/kubernetes

.PHONY: kubernetes-binaries test-kubernetes

kubernetes-binaries:
	@$(KUBERNETES_TOOLS)/build.sh >/dev/null

## The chart and the operator on a real control plane (kwok nodes): tests/kubernetes.
test-kubernetes: venv k8s-tools
	bin=$$($(KUBERNETES_TOOLS)/build.sh) && \
	HERMIT_KUBERNETES_TESTS=1 HERMIT_KUBERNETES_BIN=$$bin HELM=$(abspath $(HELM)) \
		$(BIN)/python -m pytest tests/kubernetes --confcutdir=tests/kubernetes -p no:cacheprovider
