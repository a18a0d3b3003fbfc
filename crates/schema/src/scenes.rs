//! `scene_bench.json`: the end-to-end scene benchmark of one model (`make scenes`, predict's
//! `examples/scene_bench.rs`), which the report's model card quotes when its weights are the
//! recommended model's.

use serde::{Deserialize, Serialize};

/// Where `make scenes` writes it, under `artifacts/<pipeline>/`.
pub const SCENES_FILE: &str = "scenes/scene_bench.json";

/// The benchmark's results for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneBench {
    /// The day it ran (`YYYY-MM-DD`).
    pub date: String,
    /// The model folder scored.
    pub model: String,
    /// blake3 of its `model.safetensors` (what the report compares with the recommended model).
    pub model_weights_blake3: String,
    /// The p(happy) threshold of the answers.
    pub threshold: f64,
    /// Faces composed into frames (half happy).
    pub faces: usize,
    /// Balanced accuracy of the same faces scored as crops (`--no-detect`).
    pub no_detect_balanced_accuracy: f64,
    /// Rayon threads of the frames-per-second rows.
    pub threads: usize,
    pub rows: Vec<SceneRow>,
    pub fps: Vec<SceneFps>,
}

/// One detector on one case of frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneRow {
    pub detector: String,
    pub case: String,
    /// Faces pasted (0 for the empty frames).
    pub faces: usize,
    pub found: usize,
    /// Happy / not happy, frame to answer (a missed face is a wrong answer).
    pub balanced_accuracy: f64,
    pub false_faces_per_100_frames: f64,
}

/// Frames per second of detection + the model on plain 640x480 frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneFps {
    pub detector: String,
    pub flip: bool,
    pub frames_per_second: f64,
}

impl SceneBench {
    /// The row of `detector` on `case`.
    pub fn row(&self, detector: &str, case: &str) -> Option<&SceneRow> {
        self.rows
            .iter()
            .find(|r| r.detector == detector && r.case == case)
    }
}
