//! The Makefile's stage rules, generated from the stage graph and the crates' sources.

use crate::sources;
use std::path::Path;

/// The generated Makefile part (`mk/stages.mk`): the `STAGES` list, a phony target per stage,
/// and each stage's rule. A rule's prerequisites are its upstream stages' manifests (from
/// [`fer_graph::STAGES`]), the pipeline files, and the sources of every crate it is built from
/// ([`crate_graph`]) with the build helper, the workspace manifest and the lock file. A stage
/// that reads no stage (ingest) reads the data, which mtimes don't track: make asks it every
/// time (`FORCE`) and it skips itself, leaving its manifest's mtime alone (`--keep-mtime`). A
/// stage that takes `--device` also follows `$(A)/.device`, the Makefile's stamp of `DEVICE`.
pub fn make_rules(workspace: &Path) -> String {
    let mut out = String::from(
        "# Generated from fer_graph::STAGES (crates/graph) and the crates' manifests by\n\
         # fer_codeversion::make_rules: do not edit. `make stages-mk` rewrites it; a test\n\
         # (the_makefile_stage_rules_are_generated_from_the_graph) fails when it is stale.\n\n",
    );
    let targets: Vec<String> = fer_graph::STAGES.iter().map(|s| s.target()).collect();
    out.push_str(&format!("STAGES := {}\n\n", targets.join(" ")));
    for s in fer_graph::STAGES {
        out.push_str(&format!("{}: $(A)/{}/manifest.json\n", s.target(), s.name));
    }
    for s in fer_graph::STAGES {
        out.push('\n');
        let mut pre: Vec<String> = Vec::new();
        if s.upstream.is_empty() {
            pre.push("FORCE".into());
        } else {
            pre.extend(s.upstream.iter().map(|u| format!("$(A)/{u}/manifest.json")));
            pre.push("$(or $(PFILES),$(PFILE))".into());
            for c in sources(workspace, &s.crate_dir()) {
                pre.extend(c.make_prerequisites());
            }
            pre.push("$(call src,codeversion) Cargo.toml Cargo.lock".into());
        }
        if s.device {
            // The Makefile's stamp of the last DEVICE (rewritten only when it changes): the
            // device is in the stage's params, which mtimes don't track.
            pre.push("$(A)/.device".into());
        }
        out.push_str(&format!(
            "$(A)/{}/manifest.json: {}\n",
            s.name,
            pre.join(" ")
        ));
        out.push_str("\t$(BUILD)\n");
        let mut cmd = format!("$(BIN)/{} --pipeline $(PIPELINE)", s.bin());
        if s.device {
            cmd.push_str(" --device $(DEVICE)");
        }
        // With FER_CACHE_URL, the shared run cache: pull the entry for the stage's signature
        // into the local run cache first, push the stage's folder after (empty otherwise).
        out.push_str(&format!("\t$(call cache_pull,{},{cmd})\n", s.name));
        if s.upstream.is_empty() {
            cmd.push_str(" --keep-mtime");
        }
        out.push_str(&format!("\t{cmd}\n\t$(call cache_push,{})\n", s.name));
    }
    out
}

/// The generated file's path, relative to the workspace root.
pub const MAKE_RULES_FILE: &str = "mk/stages.mk";
