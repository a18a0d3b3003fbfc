//! The class vocabulary: a model's class names in output order, and the one place that knows
//! which class is happy.
//!
//! A [`Classes`] is what `model.json` (`class_names`), the SVMs' saved form and
//! `predictions.parquet` (its `prob_<class>` / `decision_<class>` columns; a binary table has
//! none, and [`Classes::binary`] is what it means) carry. It serializes as the plain list of
//! names, so those files are byte for byte what they were.
//!
//! The one rule for a missing class: [`Classes::happy`] is an error naming the classes
//! ([`NoHappy`]); nothing falls back to class 0.

use crate::label::{BinaryLabel, Emotion, LabelMode};
use serde::{Deserialize, Serialize};

/// The happy class's name (the study's positive class, in both label modes).
pub const HAPPY: &str = BinaryLabel::Happy.as_str();
/// The binary rest class's name (the six other emotions together).
pub const NOT_HAPPY: &str = BinaryLabel::NotHappy.as_str();

/// The binary labels' values (`label` and `pred` of a binary table, and every table read as
/// happy vs the rest): happy is 0, the study's encoding ([`BinaryLabel`]).
pub const HAPPY_LABEL: u8 = BinaryLabel::Happy as u8;
pub const NOT_HAPPY_LABEL: u8 = BinaryLabel::NotHappy as u8;

/// A model's class names, in output (label) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Classes(Vec<String>);

/// A set of classes without `happy`: a model that cannot say how happy a face is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the classes {0:?} have no `happy`")]
pub struct NoHappy(pub Vec<String>);

impl Classes {
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Classes(names.into_iter().map(Into::into).collect())
    }
    /// The study's two classes: `happy`, `not_happy` (label 0 and 1).
    pub fn binary() -> Self {
        Classes::new(BinaryLabel::ALL.map(BinaryLabel::as_str))
    }
    /// The seven FER2013 emotions, in `fer2013.csv` code order.
    pub fn emotions() -> Self {
        Classes::new(Emotion::ALL.map(Emotion::as_str))
    }
    /// The classes of a label mode, indexed by label value.
    pub fn of_mode(mode: LabelMode) -> Self {
        match mode {
            LabelMode::Binary => Classes::binary(),
            LabelMode::Emotion7 => Classes::emotions(),
        }
    }
    pub fn names(&self) -> &[String] {
        &self.0
    }
    /// The names as `&str`, for APIs that take `&[&str]`.
    pub fn strs(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
    /// No names (a binary SVM header, which saves none).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// More than two classes: a model scored per class (one-vs-rest SVMs, `prob_<class>`).
    pub fn is_multiclass(&self) -> bool {
        self.0.len() > 2
    }
    /// The happy class's index (0 in binary, 3 of the seven emotions), or [`NoHappy`].
    pub fn happy(&self) -> Result<usize, NoHappy> {
        self.0
            .iter()
            .position(|c| is_happy(c))
            .ok_or_else(|| NoHappy(self.0.clone()))
    }
}

/// The names, in order (`iter`, `len`, indexing).
impl std::ops::Deref for Classes {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Classes {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<S: Into<String>> FromIterator<S> for Classes {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Self {
        Classes::new(names)
    }
}

/// Whether a class name is the happy class.
pub fn is_happy(name: &str) -> bool {
    name == HAPPY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_is_found_by_the_vocabulary_or_is_an_error() {
        assert_eq!(Classes::binary().happy(), Ok(0));
        assert_eq!(Classes::emotions().happy(), Ok(3));
        assert_eq!(Classes::of_mode(LabelMode::Emotion7), Classes::emotions());
        let none = Classes::new(["angry", "sad"]);
        let e = none.happy().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"the classes ["angry", "sad"] have no `happy`"#
        );
        assert!(Classes::emotions().is_multiclass() && !Classes::binary().is_multiclass());
    }

    #[test]
    fn it_serializes_as_the_plain_list() {
        let j = serde_json::to_string(&Classes::binary()).unwrap();
        assert_eq!(j, r#"["happy","not_happy"]"#);
        let back: Classes = serde_json::from_str(&j).unwrap();
        assert_eq!(back.strs(), ["happy", "not_happy"]);
    }
}
