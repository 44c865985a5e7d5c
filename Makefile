# Thrifty's developer commands. `make help` lists them.
SHELL := /bin/bash
VENV := .venv
VENV_VLLM := .venv-vllm
PY := $(VENV)/bin/python
THRIFTY := $(VENV)/bin/thrifty
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help demo test unit lint deps venv vllm-venv vllm-spec testbed-build up down status shell clean bench-twin bench-capacity bench-autoscale bench-autoscale-suite bench-router chart chart-check

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

demo: deps venv testbed-build ## the product tour: Helm install, examples and a router, a trace through it, a live table, a PNG
	$(THRIFTY) testbed up --twin-load-seconds 10
	$(THRIFTY) testbed shell -- $(PY) -m demo

test: deps venv vllm-venv testbed-build lint ## install everything, lint, then run every test inside a fresh network namespace
	testbed/netns.sh $(VENV)/bin/pytest -ra

unit: venv testbed-build ## unit tests only (seconds, no cluster; the chart checks use the built helm)
	$(VENV)/bin/pytest -ra tests/unit

lint: venv ## ruff, mypy --strict and the import-layer contract
	$(VENV)/bin/ruff check operator tests tools bench demo
	$(VENV)/bin/ruff format --check operator tests tools bench demo
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

deps: ## Debian packages: ip, unshare, nsenter (the testbed), lua5.1 (Argo CD health checks)
	@command -v ip >/dev/null && command -v unshare >/dev/null && command -v nsenter >/dev/null || \
	  { apt-get update -q && apt-get install -y -q iproute2 util-linux; }
	@command -v lua5.1 >/dev/null || { apt-get update -q && apt-get install -y -q lua5.1; }
	@command -v go >/dev/null || { echo "Go is required to build the testbed (testbed/build.sh)"; exit 1; }

venv: $(VENV)/.installed ## the local virtualenv with the package and its dev tools
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

vllm-venv: $(VENV_VLLM)/.installed ## vLLM's own CPU-only virtualenv: flag-spec generator and conformance tests
$(VENV_VLLM)/.installed: tools/vllm/requirements.txt
	rm -rf $(VENV_VLLM)
	python3 -m venv $(VENV_VLLM)
	$(VENV_VLLM)/bin/pip install -q --no-deps -r tools/vllm/requirements.txt
	$(VENV_VLLM)/bin/python tools/vllm/check_args.py <<< '[["some-model", "--max-num-seqs", "8"]]' >/dev/null
	touch $@

vllm-spec: vllm-venv ## regenerate operator/thrifty/vllm_args/spec.json from the pinned vLLM's parser
	$(VENV_VLLM)/bin/python tools/vllm/generate_spec.py operator/thrifty/vllm_args/spec.json

testbed-build: ## build (or find cached) etcd, kube-*, kwok and prometheus from testbed/gomod
	testbed/build.sh

up: deps venv testbed-build ## start the testbed in the background
	$(THRIFTY) testbed up
down: venv ## stop the testbed; leaves no process or state behind
	$(THRIFTY) testbed down
status: venv ## what runs where
	$(THRIFTY) testbed status
shell: venv ## a shell inside the testbed's namespace with KUBECONFIG set
	$(THRIFTY) testbed shell

bench-twin: venv ## twin step-time fidelity (vs H100 and published figures) and an hour of trace replayed on 4 twins
	$(PY) bench/twin/bench.py

bench-capacity: venv ## the capacity model against the twin's measured capacity at the SLO, over a grid of mixes and configurations
	$(PY) -m bench.capacity

bench-autoscale: venv ## Thrifty vs HPA, KubeAI, AIBrix KPA, llm-d and static on a replayed trace (TRACE=<azure csv>)
	$(PY) -m bench.autoscale $(if $(TRACE),--trace $(TRACE))

bench-autoscale-suite: venv ## the autoscaling benchmark over seeded traffic shapes, the conversation trace and a 70B model (about an hour)
	$(PY) -m bench.autoscale.suite

bench-router: venv ## router policies on a replayed Mooncake trace, and router overhead (TRACE=<mooncake jsonl>)
	$(PY) -m bench.router $(if $(TRACE),--trace $(TRACE))

chart: venv testbed-build ## regenerate chart values/schema/CRDs/dashboards, manifests/install and the Argo CD patch
	$(PY) tools/chart/generate.py

chart-check: venv testbed-build ## helm lint + helm template | kubeconform -strict (offline schemas)
	$(PY) tools/chart/validate.py

clean: ## remove the virtualenv and caches in the repository (not the binary cache)
	rm -rf $(VENV) $(VENV_VLLM) .pytest_cache .mypy_cache .ruff_cache
