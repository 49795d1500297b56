# Hermit: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The oldest supported Scrapy (the first with async Spider.start()) is pinned, with
# what it needs older, in constraints-oldest.txt: those pins replace constraints.txt's.
VENV_OLDEST ?= .venv-scrapy-oldest

.PHONY: demo test test-newest test-oldest venv clean docs bench bench-quick

# The Helm chart and the images: test-chart, test-images (and their helpers).
include mk/kubernetes.mk

## Build both images, the crawler's and the operator's, with podman (slow: see docs/kubernetes.md).
## Phony, as the folder images/ would otherwise count as the target already made.
.PHONY: images
images: image-crawler image-operator

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml recycling/pyproject.toml operator/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ./recycling -e './operator[test]' -e '.[test]'
	touch $@

$(VENV_OLDEST)/.installed: pyproject.toml recycling/pyproject.toml constraints.txt constraints-oldest.txt
	$(PYTHON) -m venv $(VENV_OLDEST)
	$(VENV_OLDEST)/bin/pip install -q --upgrade pip
	awk -F'==' 'NR == FNR { if ($$0 !~ /^#/ && NF == 2) over[tolower($$1)] = 1; next } \
		!(tolower($$1) in over)' constraints-oldest.txt constraints.txt > $(VENV_OLDEST)/constraints.txt
	grep -v '^#' constraints-oldest.txt >> $(VENV_OLDEST)/constraints.txt
	$(VENV_OLDEST)/bin/pip install -q -c $(VENV_OLDEST)/constraints.txt -e ./recycling -e '.[test]'
	touch $@

## Crawl the built-in demo site with 3 local workers, one shared Redis queue and Bloom filter.
demo: venv
	$(BIN)/hermit crawl --workers 3 --output items.jsonl

## Regenerate the settings and metrics tables of docs/settings.md and docs/metrics.md
## from the code (tests/tools/test_docs_reference.py fails while they are stale).
docs: venv
	$(BIN)/python tools/docs_reference.py

## Regenerate charts/hermit/README.md from the `## @param` lines of its values.yaml
## (tests/charts/test_chart_readme.py fails while it is stale); part of `make docs`.
.PHONY: chart-readme
chart-readme: venv
	$(BIN)/python tools/chart_readme.py --write
docs: chart-readme

## Every benchmark, side by side with plain Scrapy and scrapy-redis, on loopback; each
## writes bench/results/<name>.json and prints its table (about 70 minutes; bench-quick: a few).
BENCHES := queue dedup worker_rss crawl_throughput recycling observability many_hosts frontier resume cluster
PLOTLIB ?= /tmp/hermit-plotlib
bench: venv
	$(BIN)/python -m pip install -q --target $(PLOTLIB) matplotlib
	$(if $(BENCH_OUT),mkdir -p $(BENCH_OUT))
	set -e; for name in $(BENCHES); do echo "== bench/bench_$$name.py"; \
		$(BIN)/python bench/bench_$$name.py $(BENCH_ARGS) \
			$(if $(BENCH_OUT),--out $(BENCH_OUT)/$$name.json,$$( [ $$name = recycling ] && echo --plotlib $(PLOTLIB) )); done

## The same, small (minutes), writing to /tmp so the measured results stay as they are.
bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick BENCH_OUT=/tmp/hermit-bench-quick

## The whole test suite on the newest supported Scrapy, the Scrapy-facing tests on the
## oldest, the Helm chart, and the images built and run with podman.
test: test-newest test-oldest test-chart test-images test-kubernetes

test-newest: venv prometheus-tools redis-tls-server
	$(BIN)/python -m pytest

test-oldest: $(VENV_OLDEST)/.installed
	$(VENV_OLDEST)/bin/python -m pytest -m scrapy_versions tests/crawler

## promtool and prometheus for tests/monitoring: Debian's prometheus package, as root. Only
## the binaries are used (the tests start their own server on 127.0.0.1), never the service.
## Without root, the tests that need them fail saying so.
.PHONY: prometheus-tools
prometheus-tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null \
		|| { [ "$$(id -u)" -ne 0 ] && echo "warning: promtool/prometheus missing (apt-get install prometheus, as root)" >&2; } \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
			&& { systemctl disable --now prometheus >/dev/null 2>&1; true; }; }

## A Redis server built with TLS for the TLS tests (hermit.testing.tls): Debian's
## redis-tools (its redis-check-rdb is the server) and the two libraries it links,
## unpacked into REDIS_TLS_DIR, outside the clone, as root: never installed, so the
## other tests keep the server they find. redis-server-tls runs it with its libraries.
REDIS_TLS_DIR ?= $(HOME)/.cache/hermit/redis-debian
.PHONY: redis-tls-server
redis-tls-server: $(REDIS_TLS_DIR)/redis-server-tls
$(REDIS_TLS_DIR)/redis-server-tls:
	rm -rf $(REDIS_TLS_DIR).part && mkdir -p $(REDIS_TLS_DIR).part && chmod 777 $(REDIS_TLS_DIR).part
	cd $(REDIS_TLS_DIR).part && { apt-get download -q redis-tools libjemalloc2 liblzf1 \
		|| { apt-get update -qq && apt-get download -q redis-tools libjemalloc2 liblzf1; }; } >/dev/null
	for deb in $(REDIS_TLS_DIR).part/*.deb; do dpkg -x $$deb $(REDIS_TLS_DIR).part/root; done
	ln -s redis-check-rdb $(REDIS_TLS_DIR).part/root/usr/bin/redis-server
	rm -rf $(REDIS_TLS_DIR) && mv $(REDIS_TLS_DIR).part/root $(REDIS_TLS_DIR) && rm -rf $(REDIS_TLS_DIR).part
	libs=$$(dirname $$(find $(REDIS_TLS_DIR) -name 'libjemalloc.so.2' | head -1)); \
		printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$$@"\n' "$$libs" "$(REDIS_TLS_DIR)/usr/bin/redis-server" > $@.part
	chmod +x $@.part && mv $@.part $@
	$@ --version

clean:
	rm -rf $(VENV) $(VENV_OLDEST) $(K8S_VENV) .pytest_cache
