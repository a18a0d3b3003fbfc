//! The "Where the numbers come from" section: every upstream stage's manifest and the
//! model artifact folders.

use super::{Ctx, secs, thousands};
use crate::load::{ModelRun, Study, make_target};

fn rel_dir(study: &Study, m: &ModelRun) -> String {
    m.dir
        .strip_prefix(&study.root)
        .unwrap_or(&m.dir)
        .to_string_lossy()
        .to_string()
}

pub(super) fn provenance(cx: &mut Ctx) {
    cx.doc.h2("Where the numbers come from");
    cx.doc.p("Each stage of the pipeline wrote its outputs and a manifest (params, input and output hashes, code version). This report read the stages below; a stage marked \"not run\" left its section empty.");
    let rows: Vec<Vec<String>> = cx
        .study
        .stages
        .iter()
        .map(|st| match &st.manifest {
            Some(m) => vec![
                format!("`{}`", st.name),
                format!("{:?}", m.status).to_lowercase(),
                format!("`{}`", m.code_version),
                format!("`{}`", &m.signature[..m.signature.len().min(12)]),
                thousands(m.outputs.len() as u64),
                secs(m.computed_duration_s),
            ],
            None => vec![
                format!("`{}`", st.name),
                format!("not run (`make {}`)", make_target(st.name)),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
            ],
        })
        .collect();
    cx.doc.table(
        &[
            "Stage",
            "Status",
            "Code version",
            "Signature",
            "Outputs",
            "Run time",
        ],
        rows,
    );
    let dirs: Vec<String> = cx
        .study
        .models
        .iter()
        .map(|m| match &m.svm_name {
            Some(n) => format!(
                "{}: `{}/model.safetensors`, model `{n}`",
                m.display,
                rel_dir(cx.study, m)
            ),
            None => format!("{}: `{}/`", m.display, rel_dir(cx.study, m)),
        })
        .collect();
    cx.doc
        .p("Model artifacts, under this pipeline's artifacts folder:");
    cx.doc.list(dirs);
}
