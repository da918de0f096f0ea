# Arbiter — the two commands a new user needs: `make verify` and `make test`.
# Both install any missing Debian package first (libopenblas-dev, libhdf5-dev, libpng-dev, pkg-config).

SWIFT        ?= swift
RELEASE      := -c release -Xswiftc -enable-testing
DEB_PACKAGES := libopenblas-dev libhdf5-dev libpng-dev pkg-config
VENV         := .venv
PYTHON       := $(VENV)/bin/python
MAIN_MODEL   ?= $(if $(wildcard GoldenData/models/arbiter-main/config.json),GoldenData/models/arbiter-main,GoldenData/models/tiny-llava)
REPORT_DIR   ?= reports/verify
# make slurm-verify: the sharded verify on a one-node Slurm cluster (docs/slurm.md).
SLURM_PACKAGES := slurm-wlm munge
MODEL        ?= GoldenData/controls/dense
DATA         ?= GoldenData/controls/data
SHARDS       ?= 4
KILL_SHARD   ?= 2:$(SHARDS)

.PHONY: deps build test test-fast verify bench bench-plan bench-7b tools-venv tools-check goldens controls clean \
        slurm-deps slurm-verify slurm-test

## deps: install missing system libraries (Debian packages) — needs root, as on CI.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

## slurm-deps: install missing Slurm packages (slurmctld, slurmd, sbatch…, munge) without their recommendations —
## needs root. Nothing is started or configured: Tools/slurm/cluster.sh does that in a temp folder.
slurm-deps:
	@missing=""; for p in $(SLURM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## build: release build of the library and the `arbiter` CLI.
build: deps
	$(SWIFT) build $(RELEASE)

## test: the whole Swift Testing suite, built optimized (numeric loops are 10–50× slower in debug). One build of
## everything, the CLI with the tests (the CLI tests run it as a subprocess): `swift test` builds the library
## anew after `swift build` (~3.5 min on 2 cores), while after `swift build --build-tests` a plain `swift build`
## (make verify) has nothing left to do.
test: deps
	$(SWIFT) build $(RELEASE) --build-tests
	$(SWIFT) test $(RELEASE) --skip-build

## test-fast: everything except the heavy claim runs (the claims on the bundled models and on the controls);
## the stored golden claims are still re-evaluated from their stored results (StoredVerdictsTests).
test-fast: deps
	$(SWIFT) build $(RELEASE) --build-tests
	$(SWIFT) test $(RELEASE) --skip-build --skip 'ArbiterClaimsTests\.ClaimTests/|ControlMatrixTests/verdictMatchesDesign'

## verify: the main job on the main bundled model (see README).
verify: build
	$(SWIFT) run $(RELEASE) arbiter verify --model $(MAIN_MODEL) --out $(REPORT_DIR)

## tools-venv: the Python environment of Tools/ (only Tools/ needs Python; the Swift package never does).
$(PYTHON): Tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r Tools/requirements.txt
	touch $(PYTHON)
tools-venv: $(PYTHON)

## tools-check: regenerate every golden file (and the own-model fixture) into a temp folder and check it against
## the committed one.
tools-check: $(PYTHON)
	$(PYTHON) Tools/golden.py check
	$(PYTHON) Tools/tokenizer_goldens.py check
	$(PYTHON) Tools/golden_bundled.py check
	$(PYTHON) Tools/make_own_model.py check
	$(PYTHON) Tools/make_controls.py check
	$(PYTHON) Tools/make_7b_shaped.py --self-test
	$(PYTHON) Tools/bench_7b.py --self-test

## goldens: (re)write the golden files; refuses to overwrite files whose manifest hash differs unless FORCE=1.
goldens: $(PYTHON)
	$(PYTHON) Tools/golden.py write $(if $(FORCE),--force,)
	$(PYTHON) Tools/golden_bundled.py write $(if $(FORCE),--force,)
	$(PYTHON) Tools/make_own_model.py write $(if $(FORCE),--force,)

## controls: (re)build the planted-mechanism controls (GoldenData/controls) and verify each one's ground truth in
## PyTorch (measured: 10 min 51 s for the first five on an idle 2-core host; shared-route alone 14.6 min on a
## host busy with builds); refuses to overwrite edited files unless FORCE=1.
controls: $(PYTHON)
	$(PYTHON) Tools/make_controls.py write $(if $(FORCE),--force,)

## bench: speed of Arbiter against PyTorch on this machine (printed ratios).
bench: build $(PYTHON)
	$(PYTHON) Tools/bench.py --arbiter .build/release/arbiter

## bench-plan: the time `verify --plan` predicts against the measured `verify` time, on the main bundled model and
## the anchored control (fails beyond ±25%; run it on an idle machine).
bench-plan: build
	python3 Tools/bench_plan.py --arbiter .build/release/arbiter

## slurm-verify: start a one-node Slurm cluster here (as root), run `verify` sharded over it — SHARDS shards ×
## 3 rounds as job arrays, one shard of round 2 killed and re-run alone (KILL_SHARD=R:K; empty: none), then the merge
## job — run the unsharded `verify --out` on the same MODEL and DATA, check the two results.json are equal except
## their `seconds` fields, print both wall times; the cluster is stopped whatever happens (docs/slurm.md).
slurm-verify: build slurm-deps
	Tools/slurm/check.sh --arbiter .build/release/arbiter --shards $(SHARDS) \
	  $(if $(KILL_SHARD),--kill-shard $(KILL_SHARD),--no-kill) -- --model $(MODEL) $(if $(DATA),--data $(DATA),)

## slurm-test: the tests of Tools/slurm (rounds, re-runs, giving up, refusals, the results check, the cluster's
## start and stop, docs/slurm.md's one-node example) with a stand-in `arbiter`; no build needed, needs root.
slurm-test: slurm-deps
	Tools/slurm/test.sh

## bench-7b: Arbiter on a LLaVA-1.5-7B-shaped checkpoint (random bf16 weights, ~14.1 GB, built by
## Tools/make_7b_shaped.py in a temp folder under $TMPDIR that the trap always deletes): peak RSS of a memory-mapped
## load and one 650-token forward against the file's size (f32 and bf16 compute), two f32 forwards side by side (as
## verify runs its items) against the time the plan predicts, then the trial run `verify --count 4` (four conflict
## items, --minimum-per-target 1, the 7B cuts: Tools/bench_7b.py's TRIAL) planned, run and timed against its plan in
## all and per stage, and the default protocol's plan. Fails when a peak RSS exceeds 1.15x the checkpoint or the
## side-by-side forward's or the trial's
## prediction is off by more than 25%, so it needs an idle host (timings shift with every other job), ~20 GB of
## free disk (refused below), ~16 GB of RAM and about 2 hours (the trial run ~80 min, its plan's pilot ~15 min).
bench-7b: build $(PYTHON)
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/arbiter-bench-7b.XXXXXX") || exit 2; \
	trap 'rm -rf "$$dir"' EXIT; trap 'exit 130' INT TERM HUP; \
	python3 Tools/bench_7b.py --arbiter .build/release/arbiter --python $(PYTHON) --work "$$dir"

clean:
	rm -rf .build
