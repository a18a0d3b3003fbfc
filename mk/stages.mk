# Generated from fer_graph::STAGES (crates/graph) and the crates' manifests by
# fer_codeversion::make_rules: do not edit. `make stages-mk` rewrites it; a test
# (the_makefile_stage_rules_are_generated_from_the_graph) fails when it is stale.

STAGES := ingest stats preprocess augment train-svm train-cnn tune report

ingest: $(A)/ingest/manifest.json
stats: $(A)/stats/manifest.json
preprocess: $(A)/preprocess/manifest.json
augment: $(A)/augment/manifest.json
train-svm: $(A)/train_svm/manifest.json
train-cnn: $(A)/train_cnn/manifest.json
tune: $(A)/tune/manifest.json
report: $(A)/report/manifest.json

$(A)/ingest/manifest.json: FORCE
	$(BUILD)
	$(call cache_pull,ingest,$(BIN)/fer-ingest --pipeline $(PIPELINE))
	$(BIN)/fer-ingest --pipeline $(PIPELINE) --keep-mtime
	$(call cache_push,ingest)

$(A)/stats/manifest.json: $(A)/ingest/manifest.json $(or $(PFILES),$(PFILE)) $(call src,core) $(call src,graph) $(call src,stats) $(call src,codeversion) Cargo.toml Cargo.lock
	$(BUILD)
	$(call cache_pull,stats,$(BIN)/fer-stats --pipeline $(PIPELINE))
	$(BIN)/fer-stats --pipeline $(PIPELINE)
	$(call cache_push,stats)

$(A)/preprocess/manifest.json: $(A)/ingest/manifest.json $(or $(PFILES),$(PFILE)) $(call src,core) $(call src,graph) $(call src,preprocess) $(call src,codeversion) Cargo.toml Cargo.lock
	$(BUILD)
	$(call cache_pull,preprocess,$(BIN)/fer-preprocess --pipeline $(PIPELINE))
	$(BIN)/fer-preprocess --pipeline $(PIPELINE)
	$(call cache_push,preprocess)

$(A)/augment/manifest.json: $(A)/preprocess/manifest.json $(or $(PFILES),$(PFILE)) $(call src,augment) $(call src,augment-ops) $(call src,core) $(call src,graph) $(call src,codeversion) Cargo.toml Cargo.lock
	$(BUILD)
	$(call cache_pull,augment,$(BIN)/fer-augment --pipeline $(PIPELINE))
	$(BIN)/fer-augment --pipeline $(PIPELINE)
	$(call cache_push,augment)

$(A)/train_svm/manifest.json: $(A)/preprocess/manifest.json $(or $(PFILES),$(PFILE)) $(call src,core) $(call src,eval) $(call src,graph) $(call src,models) $(call src,ops) crates/schema/Cargo.toml crates/schema/src/calibration.rs crates/schema/src/lib.rs crates/schema/src/metrics.rs crates/schema/src/model.rs crates/schema/src/predictions.rs $(call src,train-svm) $(call src,codeversion) Cargo.toml Cargo.lock
	$(BUILD)
	$(call cache_pull,train_svm,$(BIN)/fer-train-svm --pipeline $(PIPELINE))
	$(BIN)/fer-train-svm --pipeline $(PIPELINE)
	$(call cache_push,train_svm)

$(A)/train_cnn/manifest.json: $(A)/preprocess/manifest.json $(or $(PFILES),$(PFILE)) $(call src,augment-ops) $(call src,core) $(call src,eval) $(call src,graph) $(call src,models) $(call src,ops) crates/schema/Cargo.toml crates/schema/src/calibration.rs crates/schema/src/epochs.rs crates/schema/src/lib.rs crates/schema/src/metrics.rs crates/schema/src/model.rs crates/schema/src/predictions.rs $(call src,train) $(call src,train-cnn) $(call src,codeversion) Cargo.toml Cargo.lock $(A)/.device
	$(BUILD)
	$(call cache_pull,train_cnn,$(BIN)/fer-train-cnn --pipeline $(PIPELINE) --device $(DEVICE))
	$(BIN)/fer-train-cnn --pipeline $(PIPELINE) --device $(DEVICE)
	$(call cache_push,train_cnn)

$(A)/tune/manifest.json: $(A)/preprocess/manifest.json $(A)/train_cnn/manifest.json $(or $(PFILES),$(PFILE)) $(call src,augment-ops) $(call src,cache) $(call src,core) $(call src,eval) $(call src,graph) $(call src,models) $(call src,ops) crates/schema/Cargo.toml crates/schema/src/calibration.rs crates/schema/src/epochs.rs crates/schema/src/lib.rs crates/schema/src/metrics.rs crates/schema/src/model.rs crates/schema/src/predictions.rs $(call src,train) $(call src,tune) $(call src,codeversion) Cargo.toml Cargo.lock $(A)/.device
	$(BUILD)
	$(call cache_pull,tune,$(BIN)/fer-tune --pipeline $(PIPELINE) --device $(DEVICE))
	$(BIN)/fer-tune --pipeline $(PIPELINE) --device $(DEVICE)
	$(call cache_push,tune)

$(A)/report/manifest.json: $(A)/ingest/manifest.json $(A)/stats/manifest.json $(A)/preprocess/manifest.json $(A)/augment/manifest.json $(A)/train_svm/manifest.json $(A)/train_cnn/manifest.json $(A)/tune/manifest.json $(or $(PFILES),$(PFILE)) $(call src,core) $(call src,eval) $(call src,graph) $(call src,report) crates/schema/Cargo.toml crates/schema/src/calibration.rs crates/schema/src/epochs.rs crates/schema/src/lib.rs crates/schema/src/metrics.rs crates/schema/src/model.rs crates/schema/src/predictions.rs crates/schema/src/recommendation.rs crates/schema/src/scenes.rs $(call src,codeversion) Cargo.toml Cargo.lock
	$(BUILD)
	$(call cache_pull,report,$(BIN)/fer-report --pipeline $(PIPELINE))
	$(BIN)/fer-report --pipeline $(PIPELINE)
	$(call cache_push,report)
