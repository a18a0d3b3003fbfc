//! Labels: the study's binary encoding and the seven FER2013 emotions.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The study's binary label. `Happy = 0`, `NotHappy = 1` (the study's encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum BinaryLabel {
    Happy = 0,
    NotHappy = 1,
}

impl BinaryLabel {
    pub const ALL: [BinaryLabel; 2] = [BinaryLabel::Happy, BinaryLabel::NotHappy];
    pub const fn as_str(self) -> &'static str {
        match self {
            BinaryLabel::Happy => "happy",
            BinaryLabel::NotHappy => "not_happy",
        }
    }
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(BinaryLabel::Happy),
            1 => Some(BinaryLabel::NotHappy),
            _ => None,
        }
    }
}

impl fmt::Display for BinaryLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seven FER2013 emotions, with the original `fer2013.csv` codes as discriminants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Emotion {
    Angry = 0,
    Disgust = 1,
    Fear = 2,
    Happy = 3,
    Sad = 4,
    Surprise = 5,
    Neutral = 6,
}

impl Emotion {
    pub const ALL: [Emotion; 7] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Surprise,
        Emotion::Neutral,
    ];
    /// The Kaggle folder name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Sad => "sad",
            Emotion::Surprise => "surprise",
            Emotion::Neutral => "neutral",
        }
    }
    /// The `fer2013.csv` code.
    pub fn code(self) -> u8 {
        self as u8
    }
    pub fn from_code(v: u8) -> Option<Self> {
        Emotion::ALL.get(v as usize).copied()
    }
    pub fn binary(self) -> BinaryLabel {
        if self == Emotion::Happy {
            BinaryLabel::Happy
        } else {
            BinaryLabel::NotHappy
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Emotion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Emotion::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown emotion `{s}` (expected one of: {})",
                    Emotion::ALL.map(|e| e.as_str()).join(", ")
                )
            })
    }
}

/// Which label a dataset carries in its `label` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelMode {
    /// `label` is a [`BinaryLabel`] (happy vs the six others).
    #[default]
    Binary,
    /// `label` is the [`Emotion`] code.
    Emotion7,
}

impl LabelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelMode::Binary => "binary",
            LabelMode::Emotion7 => "emotion7",
        }
    }
    pub fn num_classes(self) -> usize {
        match self {
            LabelMode::Binary => 2,
            LabelMode::Emotion7 => 7,
        }
    }
    /// The label value of an emotion under this mode.
    pub fn label_of(self, e: Emotion) -> u8 {
        match self {
            LabelMode::Binary => e.binary() as u8,
            LabelMode::Emotion7 => e.code(),
        }
    }
    /// Class names indexed by label value.
    pub fn class_names(self) -> Vec<&'static str> {
        match self {
            LabelMode::Binary => BinaryLabel::ALL.iter().map(|l| l.as_str()).collect(),
            LabelMode::Emotion7 => Emotion::ALL.iter().map(|e| e.as_str()).collect(),
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "binary" => Some(LabelMode::Binary),
            "emotion7" => Some(LabelMode::Emotion7),
            _ => None,
        }
    }
}

/// Where a dataset's training target (its `label` column) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// FER2013's own label (the folder or the `emotion` code): one annotator.
    #[default]
    Fer2013,
    /// The plurality of FERPlus's 10 annotators (rules in [`crate::ferplus`]).
    Ferplus,
}

impl LabelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelSource::Fer2013 => "fer2013",
            LabelSource::Ferplus => "ferplus",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fer2013" => Some(LabelSource::Fer2013),
            "ferplus" => Some(LabelSource::Ferplus),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_encoding() {
        assert_eq!(BinaryLabel::Happy as u8, 0);
        assert_eq!(BinaryLabel::NotHappy as u8, 1);
        assert_eq!(Emotion::Happy.binary(), BinaryLabel::Happy);
        assert_eq!(Emotion::Sad.binary(), BinaryLabel::NotHappy);
    }

    #[test]
    fn emotion_codes_round_trip() {
        for e in Emotion::ALL {
            assert_eq!(Emotion::from_code(e.code()), Some(e));
            assert_eq!(e.as_str().parse::<Emotion>().unwrap(), e);
        }
        assert!("contempt".parse::<Emotion>().is_err());
        assert_eq!(Emotion::from_code(7), None);
    }

    #[test]
    fn label_modes() {
        assert_eq!(LabelMode::Binary.label_of(Emotion::Happy), 0);
        assert_eq!(LabelMode::Binary.label_of(Emotion::Fear), 1);
        assert_eq!(LabelMode::Emotion7.label_of(Emotion::Neutral), 6);
        assert_eq!(LabelMode::Emotion7.class_names().len(), 7);
    }
}
