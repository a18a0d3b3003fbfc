//! `[ingest]` params: the raw TOML section and its validated form.

use fer_core::pipeline::PipelineFile;
use fer_core::{LabelMode, LabelSource};
use serde::{Deserialize, Serialize};

/// The `[ingest]` section as written (every key optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// `auto` (fer2013.csv if present, else the Kaggle folders), `folders`, `csv` or `synthetic`.
    pub source: String,
    /// `binary` (happy vs the six others) or `emotion7`.
    pub label_mode: String,
    /// The training target: `fer2013` (the folder or CSV code) or `ferplus` (the plurality of
    /// FERPlus's 10 votes; the sample is still drawn by FER2013's labels).
    pub labels: String,
    /// Seed protocol only: also write `pretrain.parquet`, the FER2013 training images outside
    /// the sample (never a test image), for `pretrain_epochs` in train-cnn.
    pub pretrain_pool: bool,
    /// `seed` (the study's sizes, or `[ingest.sizes]`) or `full` (every image).
    pub protocol: String,
    pub seed: u64,
    /// Fraction of each class of train carved out as the validation split.
    pub val_fraction: f64,
    /// Where the validation split comes from: `carve` (`val_fraction` of each class of train)
    /// or `public_test` (the literature's split: FER2013's PublicTest images choose the model,
    /// PrivateTest alone is the test split, every Training image trains; `protocol = "full"`
    /// and `val_fraction = 0` only).
    pub validation: String,
    /// `error` (stop at the first bad file) or `skip` (list it in rejects.parquet).
    pub on_bad: String,
    /// Resize images that are not 48x48 instead of rejecting them.
    pub resize: bool,
    /// Resize filter: `nearest`, `triangle`, `catmull_rom`, `gaussian`, `lanczos3`.
    pub resize_filter: String,
    pub sizes: Option<SizesSection>,
    pub synthetic: SyntheticSection,
    /// Keep at most this many training images (train and val) of what the protocol drew, and
    /// the same fraction of each group in every split (the binary groups, or the seven
    /// emotions under `emotion7`; at least one image of each group a split has) and of the
    /// pretraining pool, drawn with `seed`. Unset: everything drawn.
    /// Miniature runs (`MINI=1`) set it; any pipeline may, for a quick look.
    pub max_train_images: Option<usize>,
}

/// `[ingest.sizes]` as written: the four binary group sizes, or (seven emotions only)
/// `train_per_emotion` and `test_per_emotion`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizesSection {
    pub train_happy: Option<usize>,
    pub train_not_happy: Option<usize>,
    pub test_happy: Option<usize>,
    pub test_not_happy: Option<usize>,
    pub train_per_emotion: Option<usize>,
    pub test_per_emotion: Option<usize>,
}

/// Sample sizes of the `seed` protocol per emotion (`label_mode = "emotion7"`): this many
/// images of each of the seven emotions (train includes val).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerEmotion {
    pub train: usize,
    pub test: usize,
}

/// Sample sizes of the `seed` protocol (binary groups; train includes val).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    pub train_happy: usize,
    pub train_not_happy: usize,
    pub test_happy: usize,
    pub test_not_happy: usize,
}

impl Sizes {
    /// The study: trained on 2000 happy / 2022 not happy, tested on 200 / 224.
    pub const STUDY: Sizes = Sizes {
        train_happy: 2000,
        train_not_happy: 2022,
        test_happy: 200,
        test_not_happy: 224,
    };
}

/// `[ingest.synthetic]`: the drawn-face generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticSection {
    pub train_per_class: usize,
    pub test_per_class: usize,
    /// Standard deviation of the added Gaussian pixel noise.
    pub noise: f64,
}

impl Default for SyntheticSection {
    fn default() -> Self {
        SyntheticSection {
            train_per_class: 300,
            test_per_class: 100,
            noise: 8.0,
        }
    }
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            source: "auto".into(),
            label_mode: "binary".into(),
            labels: "fer2013".into(),
            pretrain_pool: false,
            protocol: "seed".into(),
            seed: 42,
            val_fraction: 0.1,
            validation: "carve".into(),
            on_bad: "error".into(),
            resize: false,
            resize_filter: "triangle".into(),
            sizes: None,
            synthetic: SyntheticSection::default(),
            max_train_images: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Auto,
    Folders,
    Csv,
    Synthetic,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Seed(Sizes),
    /// The seed protocol drawn per emotion (seven-class pipelines with `*_per_emotion` sizes).
    SeedPerEmotion(PerEmotion),
    Full,
}

/// Where the validation split comes from (`[ingest] validation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// A stratified `val_fraction` of each class of train.
    Carve,
    /// FER2013's PublicTest images; the test split keeps PrivateTest's alone.
    PublicTest,
}

impl Validation {
    fn is_carve(&self) -> bool {
        *self == Validation::Carve
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBad {
    Error,
    Skip,
}

/// Validated `[ingest]` params.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct IngestParams {
    pub source: Source,
    pub label_mode: LabelMode,
    pub labels: LabelSource,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pretrain_pool: bool,
    pub protocol: Protocol,
    pub seed: u64,
    pub val_fraction: f64,
    /// Absent from the signature when `carve` (the default), so that older pipelines keep
    /// theirs.
    #[serde(skip_serializing_if = "Validation::is_carve")]
    pub validation: Validation,
    pub on_bad: OnBad,
    pub resize: bool,
    #[serde(skip)]
    pub filter: image::imageops::FilterType,
    pub resize_filter: String,
    pub synthetic: SyntheticSection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_train_images: Option<usize>,
}

impl IngestSection {
    /// Check every key; errors name the pipeline file, `[ingest]` and the key.
    pub fn validate(&self, pf: &PipelineFile) -> fer_core::Result<IngestParams> {
        let err = |key: &str, msg: String| pf.param_error("ingest", key, msg);
        let source = match self.source.as_str() {
            "auto" => Source::Auto,
            "folders" => Source::Folders,
            "csv" => Source::Csv,
            "synthetic" => Source::Synthetic,
            s => {
                return Err(err(
                    "source",
                    format!("unknown source `{s}` (expected auto, folders, csv or synthetic)"),
                ));
            }
        };
        let label_mode = LabelMode::parse(&self.label_mode).ok_or_else(|| {
            err(
                "label_mode",
                format!(
                    "unknown label mode `{}` (expected binary or emotion7)",
                    self.label_mode
                ),
            )
        })?;
        let labels = LabelSource::parse(&self.labels).ok_or_else(|| {
            err(
                "labels",
                format!(
                    "unknown label source `{}` (expected fer2013 or ferplus)",
                    self.labels
                ),
            )
        })?;
        if labels == LabelSource::Ferplus && source == Source::Synthetic {
            return Err(err(
                "labels",
                "synthetic faces have no FERPlus votes (use labels = \"fer2013\")".into(),
            ));
        }
        let protocol = match (self.protocol.as_str(), self.sizes) {
            ("seed", Some(s)) => seed_sizes(&s, label_mode).map_err(|m| err("sizes", m))?,
            ("seed", None) => Protocol::Seed(Sizes::STUDY),
            ("full", None) => Protocol::Full,
            ("full", Some(_)) => {
                return Err(err(
                    "sizes",
                    "sizes only apply to protocol = \"seed\"".into(),
                ));
            }
            (p, _) => {
                return Err(err(
                    "protocol",
                    format!("unknown protocol `{p}` (expected seed or full)"),
                ));
            }
        };
        if let Protocol::Seed(s) = protocol
            && (s.train_happy == 0
                || s.train_not_happy == 0
                || s.test_happy == 0
                || s.test_not_happy == 0)
        {
            return Err(err("sizes", "every size must be at least 1".into()));
        }
        if let Protocol::SeedPerEmotion(s) = protocol
            && (s.train == 0 || s.test == 0)
        {
            return Err(err("sizes", "every size must be at least 1".into()));
        }
        if self.pretrain_pool && protocol == Protocol::Full {
            return Err(err(
                "pretrain_pool",
                "protocol = \"full\" trains on every image: there is no pool outside the sample"
                    .into(),
            ));
        }
        if !(self.val_fraction >= 0.0 && self.val_fraction < 1.0) {
            return Err(err(
                "val_fraction",
                format!("{} is not in [0, 1)", self.val_fraction),
            ));
        }
        let validation = match self.validation.as_str() {
            "carve" => Validation::Carve,
            "public_test" => Validation::PublicTest,
            v => {
                return Err(err(
                    "validation",
                    format!("unknown value `{v}` (expected carve or public_test)"),
                ));
            }
        };
        if validation == Validation::PublicTest {
            if protocol != Protocol::Full {
                return Err(err(
                    "validation",
                    "public_test needs protocol = \"full\" (the seed protocol draws its test \
                     images from PublicTest and PrivateTest alike)"
                        .into(),
                ));
            }
            if self.val_fraction != 0.0 {
                return Err(err(
                    "validation",
                    format!(
                        "public_test takes the validation images from PublicTest; set \
                         val_fraction = 0 (it is {}, and would carve more from train)",
                        self.val_fraction
                    ),
                ));
            }
            if source == Source::Synthetic {
                return Err(err(
                    "validation",
                    "synthetic faces have no PublicTest images (use validation = \"carve\")".into(),
                ));
            }
        }
        let on_bad = match self.on_bad.as_str() {
            "error" => OnBad::Error,
            "skip" => OnBad::Skip,
            s => {
                return Err(err(
                    "on_bad",
                    format!("unknown value `{s}` (expected error or skip)"),
                ));
            }
        };
        let filter = fer_core::transform::filter_by_name(&self.resize_filter).ok_or_else(|| {
            err(
                "resize_filter",
                format!(
                    "unknown filter `{}` (expected nearest, triangle, catmull_rom, gaussian or lanczos3)",
                    self.resize_filter
                ),
            )
        })?;
        let syn = &self.synthetic;
        if source == Source::Synthetic && (syn.train_per_class == 0 || syn.test_per_class == 0) {
            return Err(err(
                "synthetic",
                "train_per_class and test_per_class must be at least 1".into(),
            ));
        }
        if !(syn.noise >= 0.0 && syn.noise.is_finite()) {
            return Err(err(
                "synthetic.noise",
                format!("{} must be >= 0", syn.noise),
            ));
        }
        if self.max_train_images == Some(0) {
            return Err(err("max_train_images", "must be at least 1".into()));
        }
        Ok(IngestParams {
            source,
            label_mode,
            labels,
            pretrain_pool: self.pretrain_pool,
            protocol,
            seed: self.seed,
            val_fraction: self.val_fraction,
            validation,
            on_bad,
            resize: self.resize,
            filter,
            resize_filter: self.resize_filter.clone(),
            synthetic: syn.clone(),
            max_train_images: self.max_train_images,
        })
    }
}

/// The seed protocol `[ingest.sizes]` asks for: all four binary sizes, or (seven emotions) both
/// per-emotion sizes; never a mix, never a partial set.
fn seed_sizes(s: &SizesSection, mode: LabelMode) -> Result<Protocol, String> {
    let binary = [
        s.train_happy,
        s.train_not_happy,
        s.test_happy,
        s.test_not_happy,
    ];
    let per = [s.train_per_emotion, s.test_per_emotion];
    let (nb, np) = (
        binary.iter().filter(|v| v.is_some()).count(),
        per.iter().filter(|v| v.is_some()).count(),
    );
    match (nb, np) {
        (4, 0) => Ok(Protocol::Seed(Sizes {
            train_happy: binary[0].unwrap_or(0),
            train_not_happy: binary[1].unwrap_or(0),
            test_happy: binary[2].unwrap_or(0),
            test_not_happy: binary[3].unwrap_or(0),
        })),
        (0, 2) if mode == LabelMode::Emotion7 => Ok(Protocol::SeedPerEmotion(PerEmotion {
            train: per[0].unwrap_or(0),
            test: per[1].unwrap_or(0),
        })),
        (0, 2) => Err(
            "train_per_emotion and test_per_emotion need label_mode = \"emotion7\" (binary \
             pipelines give train_happy, train_not_happy, test_happy and test_not_happy)"
                .into(),
        ),
        (0, _) => Err("give both train_per_emotion and test_per_emotion".into()),
        (_, 0) => Err(
            "give all four of train_happy, train_not_happy, test_happy and test_not_happy".into(),
        ),
        _ => Err("give either the four binary sizes or the two per-emotion sizes, not both".into()),
    }
}
