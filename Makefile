# fer-pipeline: the Makefile plays DVC's dvc.yaml. Each stage's target is its manifest;
# a stage binary also skips itself when its manifest matches its inputs, params and code.
#   make all                 reproduce every stage of PIPELINE (default: seed)
#   make stats PIPELINE=full one stage and what it needs
# See `make help`.

PIPELINE    ?= seed
FER2013_DIR ?= data/fer2013
FERPLUS_DIR ?= data/ferplus
CARGO       ?= cargo
# DEVICE=wgpu trains on a GPU (builds train-cnn with --features wgpu).
DEVICE      ?= cpu
# fer-predict/yunet: YuNet, the default face detector (tract-onnx; a feature because tract would
# put `make test`'s first build over its budget; scripts/feature-parity.sh keeps the builds with
# and without it sharing every other compiled crate). YUNET=0 builds without it (SeetaFace only).
YUNET ?= 1
CARGO_FEATURES := $(if $(filter 1,$(YUNET)),--features fer-predict/yunet,) \
                  $(if $(filter wgpu,$(DEVICE)),--features fer-train-cnn/wgpu,)
# WORKERS=N runs tune's search over N local workers sharing a study (fer_tune::workers): SQLite in
# the run's resume folder, or the database FER_TUNE_STUDY names (postgres://...). Either builds
# fer-tune with its `study` feature (sqlx; kept out of make test's build).
WORKERS     ?=
STUDY_BUILD := $(if $(or $(filter-out 1,$(WORKERS)),$(FER_TUNE_STUDY)),1,)
CARGO_FEATURES += $(if $(STUDY_BUILD),--features fer-tune/study,)
ifneq ($(WORKERS),)
export FER_TUNE_WORKERS := $(WORKERS)
endif
# FER_CACHE_URL=s3://bucket/prefix (or file:///path): the shared run cache, a second level under
# the local one (crates/cache). Before each stage, `fer-cache pull` brings the entry for the stage's
# signature (`--print-signature`) into the local run cache, which the stage then restores (its
# hashes checked again); after it, `fer-cache push` stores the stage's folder, blobs first and
# manifest last. An s3:// URL builds fer-cache with its `s3` feature (kept out of make test's build).
CACHE_BUILD := $(if $(filter s3://% s3a://%,$(FER_CACHE_URL)),1,)
CARGO_FEATURES += $(if $(CACHE_BUILD),--features fer-cache/s3,)
cache_pull = $(if $(FER_CACHE_URL),sig="$$($(2) --print-signature || true)"; $(BIN)/fer-cache pull --stage $(1) --signature "$$sig" --stage-dir $(A)/$(1))
cache_push = $(if $(FER_CACHE_URL),$(BIN)/fer-cache push $(A)/$(1))
# MINI=1 runs PIPELINE in miniature (fer_core::mini: sizes, epochs, trials and time limits
# capped, every code path kept) into artifacts/<pipeline>-mini/: what CI runs for every file.
MINI        ?=
IS_MINI     := $(filter 1 true yes,$(MINI))
# The stage binaries read FER_MINI; it is always set here so the binaries and $(A) agree.
FER_MINI    := $(if $(IS_MINI),1,0)
export FER2013_DIR FERPLUS_DIR FER_MINI

A      := artifacts/$(PIPELINE)$(if $(IS_MINI),-mini,)
PFILE  := pipelines/$(PIPELINE).toml
# The pipeline file and the files it extends (`extends = "<name>"`, followed up to 8 levels;
# a cycle is the stage binaries' error to report): editing a parent reruns its children.
PFILES := $(shell f=$(PFILE); n=0; while [ -f "$$f" ] && [ $$n -lt 8 ]; do echo "$$f"; \
            p=$$(sed -n -E 's/^extends *= *"([A-Za-z0-9_-]+)".*/\1/p' "$$f"); [ -n "$$p" ] || break; \
            f=pipelines/$$p.toml; n=$$((n+1)); done)
BIN    := $(or $(CARGO_TARGET_DIR),target)/release

# Sources a crate is built from (the generated stage rules list them per stage).
src   = $(shell find crates/$(1)/src crates/$(1)/Cargo.toml crates/$(1)/build.rs -type f 2>/dev/null)
# The data is not tracked by mtimes (an image replaced in place, or FER2013_DIR pointed at another
# copy, keeps them): make asks ingest every time (FORCE), and ingest hashes the files' contents
# (about 0.3 s for FER2013's 35,887 images once they are in the page cache) and skips when they
# match. With --keep-mtime a skip leaves ingest's manifest as it was, and make (which re-reads a
# target's mtime after its recipe) then leaves the stages after it alone.

# Build every binary at once (one feature resolution for the whole workspace, the same one
# `make test` uses, so burn is compiled once), then run one stage on the pipeline.
BUILD = @$(CARGO) build --release --quiet --workspace --bins $(CARGO_FEATURES)

# The stage rules (STAGES, a target per stage, each manifest's prerequisites and recipe) are
# generated from the one declaration of the stage graph (crates/graph) and the crates'
# manifests: `make stages-mk` rewrites mk/stages.mk, and a test fails when it is stale.
include mk/stages.mk
# `make` alone lists the targets (the included rules would otherwise make `ingest` the default).
.DEFAULT_GOAL := help

# A recipe that fails removes its target: a failed stage is never taken as finished.
.DELETE_ON_ERROR:

.PHONY: all demo stages-mk print-stages hostile test lint-workflows bench bench-compare scenes help clean clean-cache report-diff status gpu-check FORCE $(STAGES)
FORCE:

# DEVICE is in train-cnn's and tune's params (so in their signatures), but make compares only
# mtimes: a stamp holding the last DEVICE, rewritten only when it changes (its recipe runs every
# time and leaves the file alone otherwise), makes `make all DEVICE=wgpu` after a CPU run rerun
# those two stages and what follows them, and nothing else. The stages that take --device list
# it among their prerequisites (mk/stages.mk).
$(A)/.device: FORCE
	@mkdir -p $(@D); [ "$$(cat $@ 2>/dev/null)" = "$(DEVICE)" ] || echo "$(DEVICE)" > $@

all: $(STAGES)


# The scene benchmark (`make scenes`, not a stage) is one more input of the report.
$(A)/report/manifest.json: $(wildcard $(A)/scenes/scene_bench.json)

# The stages' make targets (binaries fer-<target>), in run order, for scripts.
print-stages:
	@echo $(STAGES)

stages-mk: ## rewrite mk/stages.mk from the stage graph (crates/graph)
	FER_BLESS=1 $(CARGO) test --release --quiet -p fer-codeversion --lib the_makefile_stage_rules

# make status: for each stage, up to date or why it would run (the section's keys, code or
# inputs that changed), by the same signature comparison the stages make; computes nothing.
status: ## each stage of PIPELINE: up to date, or why it would run (like dvc status)
	$(BUILD)
	@for s in $(STAGES); do $(BIN)/fer-$$s --pipeline $(PIPELINE) --status; done

# make report-diff A=seed B=full: metrics and params that differ (A, B: pipeline names under
# artifacts/, or paths to a pipeline's artifacts folder or a report folder).
report-diff: ## metrics and params that differ between two runs (A=, B=)
	@test "$(origin A)" = "command line" -a -n "$(B)" || { echo "usage: make report-diff A=<pipeline-or-run> B=<pipeline-or-run>"; exit 2; }
	$(BUILD)
	@$(BIN)/fer-report diff "$(A)" "$(B)"

demo: ## the whole pipeline on synthetic faces (no download needed)
	@$(MAKE) --no-print-directory all PIPELINE=smoke
	@echo "demo outputs: artifacts/smoke/ (open artifacts/smoke/stats/samples_train.png)"

# scripts/hostile.py: 14 attacks (odd and huge images, bursts, slow bodies, clients that never
# read, half request heads, SIGTERM, token and Origin), each on a fresh `fer-predict serve` with
# default flags; its JPEG fixtures come from the hostile_fixtures example (target/hostile-fixtures).
HOSTILE_MODEL ?= artifacts/smoke/train_cnn/fer-small
hostile: ## hostile clients against fer-predict serve (needs make demo; about 3 min)
	$(BUILD)
	@$(CARGO) build --release --quiet -p fer-predict --examples $(CARGO_FEATURES)
	python3 scripts/hostile.py --bin $(BIN)/fer-predict --model $(HOSTILE_MODEL)

test: ## unit and integration tests (no download needed)
	$(CARGO) test --release --workspace --tests

lint-workflows: ## check .github/workflows with actionlint (self-test on a known-bad workflow first)
	scripts/actionlint.sh --self-test

bench: ## timings on the real data (FER2013_DIR), printed as a table
	$(BUILD)
	$(BIN)/fer-bench --data-dir $(FER2013_DIR)

# PyTorch (TORCH_PYTHON, default python3; a benchmark reference only, never a pipeline
# dependency) beside fer-train-cnn on the same CNNs, batch and thread count, in alternating
# rounds (ROUNDS=2). Without torch its column says n/a.
# The end-to-end scene benchmark of MODEL (below; default this pipeline's fer-small): FER2013
# test faces composed into 640x480 frames (plain, dark, backlit, tilted, covered, blurred, low
# resolution, JPEG, three faces, empty), per detector; writes $(A)/scenes/scene_bench.json, which
# the report's model card quotes when MODEL has the recommended model's weights.
SCENE_FACES ?= 100
scenes: ## scene benchmark of MODEL: faces found, frame-to-answer accuracy per case and detector (about 2 min)
	$(BUILD)
	@$(CARGO) build --release --quiet -p fer-predict --examples $(CARGO_FEATURES)
	$(BIN)/examples/scene_bench $(FER2013_DIR)/test $(MODEL) $(SCENE_FACES) --out $(A)/scenes/scene_bench.json

bench-compare: ## CNN training/inference images/s: fer-ops vs burn's ops vs PyTorch, one table
	$(BUILD)
	BIN=$(BIN) scripts/bench-compare.sh

# scripts/gpu-check.sh: builds with wgpu into target/gpu (GPU_TARGET_DIR), on Mesa's lavapipe where
# there is no GPU (installed when missing, as root); writes artifacts/gpu-check/summary.md.
gpu-check: ## the wgpu path: agreement with the CPU, smoke-gpu end to end, portable weights (~30 min on 2 cores)
	scripts/gpu-check.sh

# fer-predict: score photos per face with a model folder (default: this pipeline's fer-small;
# MODEL=$(A)/train_svm or $(A)/tune/best work too). Rows go to stdout, progress to stderr.
#   make predict INPUT="photos/ frame.jpg" [MODEL=...] [ARGS="--no-detect --format jsonl"]
MODEL ?= $(A)/train_cnn/fer-small
ADDR  ?= 127.0.0.1:8080
.PHONY: predict serve
predict: ## score photos per face: INPUT=<files|folders> [MODEL=dir] [ARGS=...] (CSV on stdout)
	@test -n "$(INPUT)" || { echo "usage: make predict INPUT=<image files or folders> [MODEL=$(MODEL)] [ARGS=...]" >&2; exit 2; }
	$(BUILD)
	@$(BIN)/fer-predict --model $(MODEL) --pipeline $(PIPELINE) $(ARGS) $(INPUT)

serve: ## checkout-kiosk HTTP service: POST /predict, GET /health [MODEL=dir] [ADDR=127.0.0.1:8080]
	$(BUILD)
	$(BIN)/fer-predict serve --model $(MODEL) --pipeline $(PIPELINE) --addr $(ADDR) $(ARGS)

clean: ## remove artifacts/ (the run cache is kept)
	rm -rf artifacts

# The folder the binaries use (FER_CACHE_DIR, else the platform's cache folder: ~/.cache on
# Linux, ~/Library/Caches on macOS), as they print it.
clean-cache: ## empty the run cache (FER_CACHE_DIR)
	$(BUILD)
	@d="$$($(BIN)/fer-ingest --print-cache-dir)"; if [ -n "$$d" ]; then echo "rm -rf $$d"; rm -rf "$$d"; fi

help: ## this list
	@echo "make [target] [PIPELINE=<name>] [MINI=1] [FER2013_DIR=data/fer2013] [FERPLUS_DIR=data/ferplus]"
	@echo "  all          every stage of PIPELINE ($(STAGES))"
	@echo "  ingest       FER2013 -> $(A)/ingest/images.parquet"
	@echo "  stats        counts, mean/std, histograms, samples, audit -> $(A)/stats/"
	@echo "  preprocess   fitted transform + tensors per split -> $(A)/preprocess/"
	@echo "  augment      augmentation preview (+ offline set) -> $(A)/augment/"
	@echo "  train-svm    the study's SVM (raw pixels and HOG; RBF, linear) -> $(A)/train_svm/"
	@echo "  train-cnn    the study's CNNs and ours (DEVICE=cpu|wgpu) -> $(A)/train_cnn/"
	@echo "  tune         hyperparameter search (ASHA or random; WORKERS=N: N local workers) -> $(A)/tune/"
	@echo "  report       SVM versus CNN: index.html, report.md, recommendation.json -> $(A)/report/"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-14s %s\n", $$1, $$2}'
	@echo "PIPELINE (pipelines/<name>.toml; MINI=1 runs one in miniature into artifacts/<name>-mini/):"
	@scripts/pipelines.sh --help-lines