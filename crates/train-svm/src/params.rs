//! The stage's params: `[train_svm]` as written ([`SvmSection`]), its validation into
//! [`SvmParams`] (gamma entries, per-class C, the linear solver), the command line ([`Cli`]),
//! [`Params`] and the params the signature hashes ([`signature_params`]).

use crate::{FeatureKind, HogParams, KernelKind, STAGE, SvmError};
use fer_core::cli::StageArgs;
use fer_core::pipeline::PipelineFile;
use serde::{Deserialize, Serialize};

/// `fer-train-svm`'s command line.
pub type Cli = fer_core::cli::StageCli<fer_core::cli::NoArgs>;

/// One entry of `gamma` as written: a number or a string (`"scale"`, `"<k>*scale"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GammaEntry {
    Value(f64),
    Name(String),
}

/// A validated gamma: absolute, or a multiple of sklearn's `scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gamma {
    Value(f64),
    Scale(f64),
}

impl Gamma {
    /// The value for features whose `scale` gamma is `scale`.
    pub fn resolve(self, scale: f64) -> f64 {
        match self {
            Gamma::Value(v) => v,
            Gamma::Scale(k) => k * scale,
        }
    }
    /// As written in reports: `scale`, `3*scale`, `0.001`.
    pub fn spec(self) -> String {
        match self {
            Gamma::Value(v) => format!("{v}"),
            Gamma::Scale(1.0) => "scale".into(),
            Gamma::Scale(k) => format!("{k}*scale"),
        }
    }
}

/// `[train_svm]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvmSection {
    pub seed: u64,
    pub features: Vec<String>,
    pub kernels: Vec<String>,
    pub c: Vec<f64>,
    pub c_linear: Option<Vec<f64>>,
    pub linear_solver: String,
    pub gamma: Vec<GammaEntry>,
    pub pca: usize,
    pub max_train: usize,
    pub rff_dim: usize,
    pub tol: f64,
    pub class_weight: String,
    pub hog: HogParams,
}

impl Default for SvmSection {
    fn default() -> Self {
        SvmSection {
            seed: 42,
            features: vec!["raw".into(), "hog".into()],
            kernels: vec!["rbf".into(), "linear".into(), "rff".into()],
            c: vec![1.0, 3.0, 10.0],
            c_linear: Some(vec![0.001, 0.01, 0.1]),
            linear_solver: "dcd".into(),
            gamma: ["0.5*scale", "scale", "2*scale"]
                .map(|g| GammaEntry::Name(g.into()))
                .to_vec(),
            pca: 150,
            max_train: 4000,
            rff_dim: 2000,
            tol: 1e-3,
            class_weight: "none".into(),
            hog: HogParams::default(),
        }
    }
}

/// Validated `[train_svm]` params.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SvmParams {
    pub seed: u64,
    pub features: Vec<FeatureKind>,
    pub kernels: Vec<KernelKind>,
    pub c: Vec<f64>,
    pub c_linear: Vec<f64>,
    pub linear_solver: LinearSolver,
    pub gamma: Vec<Gamma>,
    pub pca: usize,
    pub max_train: usize,
    pub rff_dim: usize,
    pub tol: f64,
    pub class_weight: ClassWeight,
    pub hog: HogParams,
}

/// Per-class C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// The same C for both classes.
    None,
    /// scikit-learn's `class_weight="balanced"`: C times n / (2 n_class), per training set.
    Balanced,
}

impl ClassWeight {
    /// (C of happy rows, C of not-happy rows) for these training rows.
    pub fn c(self, c: f64, happy: &[bool]) -> (f64, f64) {
        match self {
            ClassWeight::None => (c, c),
            ClassWeight::Balanced => {
                let n = happy.len() as f64;
                let h = happy.iter().filter(|&&v| v).count() as f64;
                (c * n / (2.0 * h.max(1.0)), c * n / (2.0 * (n - h).max(1.0)))
            }
        }
    }
}

/// How the `linear` kernel is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearSolver {
    /// Dual coordinate descent (liblinear's hinge-loss solver) on every train row.
    Dcd,
    /// linfa-svm's SMO with a linear kernel on the `max_train` subsample (slow: it keeps the
    /// full kernel matrix and converges slowly on nearly separable pixels).
    Smo,
}

fn parse_gamma(e: &GammaEntry) -> Result<Gamma, String> {
    let positive = |v: f64, what: &str| {
        if v > 0.0 && v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{what} must be a number > 0"))
        }
    };
    match e {
        GammaEntry::Value(v) => positive(*v, &format!("{v}")).map(Gamma::Value),
        GammaEntry::Name(s) if s == "scale" => Ok(Gamma::Scale(1.0)),
        GammaEntry::Name(s) => {
            let k = s
                .strip_suffix("*scale")
                .and_then(|k| k.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("`{s}` is not \"scale\", \"<k>*scale\" or a number > 0"))?;
            positive(k, &format!("the factor of `{s}`")).map(Gamma::Scale)
        }
    }
}

impl SvmSection {
    /// `side`: the image side the preprocess stage makes (for the HOG layout check).
    pub fn validate(&self, pf: &PipelineFile, side: usize) -> fer_core::Result<SvmParams> {
        let err = |k: &str, m: String| pf.param_error(STAGE, k, m);
        let mut features = Vec::new();
        if self.features.is_empty() {
            return Err(err(
                "features",
                "is empty (give \"raw\" and/or \"hog\")".into(),
            ));
        }
        for f in &self.features {
            let k = FeatureKind::parse(f).ok_or_else(|| {
                err(
                    "features",
                    format!("unknown feature `{f}` (expected raw or hog)"),
                )
            })?;
            if features.contains(&k) {
                return Err(err("features", format!("`{f}` is listed twice")));
            }
            features.push(k);
        }
        let mut kernels = Vec::new();
        if self.kernels.is_empty() {
            return Err(err(
                "kernels",
                "is empty (give rbf, linear and/or rff)".into(),
            ));
        }
        for k in &self.kernels {
            let kk = KernelKind::parse(k).ok_or_else(|| {
                err(
                    "kernels",
                    format!("unknown kernel `{k}` (expected rbf, linear or rff)"),
                )
            })?;
            if kernels.contains(&kk) {
                return Err(err("kernels", format!("`{k}` is listed twice")));
            }
            kernels.push(kk);
        }
        if self.c.is_empty() {
            return Err(err("c", "is empty (give at least one C > 0)".into()));
        }
        for &c in &self.c {
            if !(c > 0.0 && c.is_finite()) {
                return Err(err("c", format!("{c} is not > 0")));
            }
        }
        let c_linear = self.c_linear.clone().unwrap_or_else(|| self.c.clone());
        if c_linear.is_empty() {
            return Err(err("c_linear", "is empty (leave it out to use `c`)".into()));
        }
        for &c in &c_linear {
            if !(c > 0.0 && c.is_finite()) {
                return Err(err("c_linear", format!("{c} is not > 0")));
            }
        }
        let linear_solver = match self.linear_solver.as_str() {
            "dcd" => LinearSolver::Dcd,
            "smo" => LinearSolver::Smo,
            s => {
                return Err(err(
                    "linear_solver",
                    format!("unknown solver `{s}` (expected dcd or smo)"),
                ));
            }
        };
        if self.gamma.is_empty() {
            return Err(err(
                "gamma",
                "is empty (give \"scale\" or numbers > 0)".into(),
            ));
        }
        let gamma = self
            .gamma
            .iter()
            .map(parse_gamma)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| err("gamma", m))?;
        if self.max_train != 0 && self.max_train < 10 {
            return Err(err(
                "max_train",
                format!("{} is below 10 (0 = no limit)", self.max_train),
            ));
        }
        if !(1..=100_000).contains(&self.rff_dim) {
            return Err(err(
                "rff_dim",
                format!("{} is not in 1..=100000", self.rff_dim),
            ));
        }
        if !(self.tol > 0.0 && self.tol < 1.0) {
            return Err(err("tol", format!("{} is not in (0, 1)", self.tol)));
        }
        let class_weight = match self.class_weight.as_str() {
            "none" => ClassWeight::None,
            "balanced" => ClassWeight::Balanced,
            s => {
                return Err(err(
                    "class_weight",
                    format!("unknown class weight `{s}` (expected none or balanced)"),
                ));
            }
        };
        let h = &self.hog;
        if !(1..=64).contains(&h.orientations) {
            return Err(err(
                "hog.orientations",
                format!("{} is not in 1..=64", h.orientations),
            ));
        }
        for (k, v) in [
            ("hog.cell", h.cell),
            ("hog.block", h.block),
            ("hog.stride", h.stride),
        ] {
            if v == 0 {
                return Err(err(k, "must be >= 1".into()));
            }
        }
        if features.contains(&FeatureKind::Hog) {
            h.length(side).map_err(|m| {
                err(
                    "hog",
                    format!(
                        "does not fit the {side}x{side} images of [preprocess] size = {side}: \
                             {m}; raise the size or lower hog.cell"
                    ),
                )
            })?;
        }
        Ok(SvmParams {
            seed: self.seed,
            features,
            kernels,
            c: self.c.clone(),
            c_linear,
            linear_solver,
            gamma,
            pca: self.pca,
            max_train: self.max_train,
            rff_dim: self.rff_dim,
            tol: self.tol,
            class_weight,
            hog: self.hog,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub svm: SvmParams,
    pub common: StageArgs,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, SvmError> {
        let s: SvmSection = pipeline.section(STAGE)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            svm: s.validate(pipeline, fer_core::pipeline::image_side(pipeline)?)?,
            common: cli.common.clone(),
        })
    }
}

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, SvmError> {
    Ok(serde_json::to_value(&p.svm).expect("params serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_entries() {
        let g = |e: GammaEntry| parse_gamma(&e);
        assert_eq!(g(GammaEntry::Name("scale".into())), Ok(Gamma::Scale(1.0)));
        assert_eq!(g(GammaEntry::Name("3*scale".into())), Ok(Gamma::Scale(3.0)));
        assert_eq!(g(GammaEntry::Value(0.5)), Ok(Gamma::Value(0.5)));
        assert!(g(GammaEntry::Value(0.0)).is_err());
        assert!(g(GammaEntry::Name("auto".into())).is_err());
        assert!(g(GammaEntry::Name("-1*scale".into())).is_err());
        assert_eq!(Gamma::Scale(3.0).spec(), "3*scale");
        assert_eq!(Gamma::Scale(3.0).resolve(0.5), 1.5);
    }

    #[test]
    fn balanced_class_weight_scales_c_by_inverse_frequency() {
        let happy = [true, false, false, false];
        assert_eq!(ClassWeight::None.c(2.0, &happy), (2.0, 2.0));
        let (h, n) = ClassWeight::Balanced.c(2.0, &happy);
        assert!((h - 4.0).abs() < 1e-12 && (n - 4.0 / 3.0).abs() < 1e-12);
    }

    fn svm_params(text: &str) -> Result<SvmParams, String> {
        let pf = PipelineFile::parse(std::path::Path::new("pipelines/t.toml"), text)
            .map_err(|e| e.to_string())?;
        let s: SvmSection = pf.section(STAGE).map_err(|e| e.to_string())?;
        let side = fer_core::pipeline::image_side(&pf).map_err(|e| e.to_string())?;
        s.validate(&pf, side).map_err(|e| e.to_string())
    }

    /// The rule between `[train_svm]` and `[preprocess]` fails when the file is validated,
    /// before any data is read, naming both keys; a size that is not a size is an error too.
    #[test]
    fn the_hog_layout_must_fit_the_preprocessed_side_at_validation() {
        let hog =
            "[train_svm]\nfeatures = [\"hog\"]\n[train_svm.hog]\ncell = 8\nblock = 2\nstride = 1\n";
        assert!(
            svm_params(hog).is_ok(),
            "48x48 (the default) fits 8-pixel cells"
        );
        let e = svm_params(&format!("[preprocess]\nsize = 12\n{hog}")).unwrap_err();
        assert!(
            e.contains("[train_svm] hog") && e.contains("[preprocess] size = 12"),
            "{e}"
        );
        let e = svm_params(&format!("[preprocess]\nsize = \"big\"\n{hog}")).unwrap_err();
        assert!(e.contains("[preprocess] size"), "{e}");
    }
}
