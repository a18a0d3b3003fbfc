//! `TrainSettings`: one model's training settings, as `[train_cnn]` and `[[train_cnn.models]]`
//! give them and as `model.json` records them beside the weights (its schema is core's).

pub use fer_schema::model::{MIN_PART, TrainSettings, auto_workers};
