//! The search space (`[tune.space]`): one entry per hyperparameter, each a choice
//! (`{ choice = [...] }`) or a range (`{ low = .., high = .., log = true }`), and sampling a
//! trial's configuration from it with a per-trial seeded RNG (so trial `i` is the same
//! configuration however the search was interrupted and resumed).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One dimension as written and validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Choice { choice: Vec<f64> },
    Range { low: f64, high: f64, log: bool },
}

/// What each key samples, and the limits its values must respect.
struct Key {
    name: &'static str,
    int: bool,
    min: f64,
    max: f64,
    help: &'static str,
}

const KEYS: &[Key] = &[
    Key {
        name: "blocks",
        int: true,
        min: 1.0,
        max: 6.0,
        help: "conv blocks",
    },
    Key {
        name: "filters",
        int: true,
        min: 1.0,
        max: 1024.0,
        help: "channels of each block (sampled per block, then sorted so blocks widen)",
    },
    Key {
        name: "kernel",
        int: true,
        min: 1.0,
        max: 7.0,
        help: "kernel size of each block (odd)",
    },
    Key {
        name: "dense",
        int: true,
        min: 0.0,
        max: 4096.0,
        help: "hidden dense units (0 = none)",
    },
    Key {
        name: "dropout",
        int: false,
        min: 0.0,
        max: 0.95,
        help: "dropout before the classifier",
    },
    Key {
        name: "lr",
        int: false,
        min: 1e-7,
        max: 1.0,
        help: "peak learning rate",
    },
    Key {
        name: "weight_decay",
        int: false,
        min: 0.0,
        max: 1.0,
        help: "AdamW weight decay",
    },
    Key {
        name: "batch_size",
        int: true,
        min: 2.0,
        max: 1024.0,
        help: "training batch size",
    },
    Key {
        name: "aug_strength",
        int: false,
        min: 0.0,
        max: 3.0,
        help: "multiplier of the [[train_cnn.ops]] magnitudes",
    },
];

/// The validated space: a dimension per key that is searched (others keep the base value).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Space {
    pub dims: Vec<(String, Dim)>,
}

/// A space error: the key (`space.lr`, `space.filters.choice`) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> SpaceError {
    SpaceError {
        key: key.into(),
        message: message.into(),
    }
}

fn number(v: &toml::Value, key: &str) -> Result<f64, SpaceError> {
    match v {
        toml::Value::Integer(i) => Ok(*i as f64),
        toml::Value::Float(f) => Ok(*f),
        other => Err(err(key, format!("{other} is not a number"))),
    }
}

impl Space {
    /// Parse `[tune.space]` (a TOML table); every error names its key.
    pub fn parse(table: &toml::Table) -> Result<Space, SpaceError> {
        let mut dims = Vec::new();
        for (name, value) in table {
            let key = format!("space.{name}");
            let Some(k) = KEYS.iter().find(|k| k.name == name) else {
                let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
                return Err(err(
                    key,
                    format!(
                        "unknown hyperparameter (expected one of: {})",
                        names.join(", ")
                    ),
                ));
            };
            let Some(t) = value.as_table() else {
                return Err(err(
                    key,
                    "must be a table: { choice = [...] } or { low = .., high = .., log = false }",
                ));
            };
            if let Some(extra) = t
                .keys()
                .find(|f| !["choice", "low", "high", "log"].contains(&f.as_str()))
            {
                return Err(err(
                    format!("{key}.{extra}"),
                    "unknown field (expected choice, or low, high and log)",
                ));
            }
            let in_limits = |v: f64, at: &str| -> Result<(), SpaceError> {
                if !v.is_finite() || v < k.min || v > k.max {
                    return Err(err(
                        at,
                        format!("{v} is outside {}..={} ({})", k.min, k.max, k.help),
                    ));
                }
                if k.int && v.fract() != 0.0 {
                    return Err(err(at, format!("{v} must be a whole number ({})", k.help)));
                }
                if k.name == "kernel" && (v as u64).is_multiple_of(2) {
                    return Err(err(at, format!("{v} must be odd")));
                }
                Ok(())
            };
            let dim = if let Some(c) = t.get("choice") {
                if t.contains_key("low") || t.contains_key("high") || t.contains_key("log") {
                    return Err(err(key, "give either `choice` or `low`/`high`, not both"));
                }
                let at = format!("{key}.choice");
                let list = c
                    .as_array()
                    .ok_or_else(|| err(&at, "must be a list of values"))?;
                if list.is_empty() {
                    return Err(err(&at, "is empty: list at least one value"));
                }
                let choice = list
                    .iter()
                    .map(|v| number(v, &at))
                    .collect::<Result<Vec<f64>, _>>()?;
                for &v in &choice {
                    in_limits(v, &at)?;
                }
                Dim::Choice { choice }
            } else {
                let low = number(
                    t.get("low")
                        .ok_or_else(|| err(&key, "needs `choice` or both `low` and `high`"))?,
                    &format!("{key}.low"),
                )?;
                let high = number(
                    t.get("high")
                        .ok_or_else(|| err(&key, "needs `choice` or both `low` and `high`"))?,
                    &format!("{key}.high"),
                )?;
                let log = match t.get("log") {
                    None => false,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(v) => {
                        return Err(err(
                            format!("{key}.log"),
                            format!("{v} is not true or false"),
                        ));
                    }
                };
                in_limits(low, &format!("{key}.low"))?;
                in_limits(high, &format!("{key}.high"))?;
                if low > high {
                    return Err(err(key, format!("low {low} is greater than high {high}")));
                }
                if log && low <= 0.0 {
                    return Err(err(
                        format!("{key}.low"),
                        format!("{low} must be > 0 on a log scale"),
                    ));
                }
                if k.name == "kernel" {
                    return Err(err(key, "kernel sizes must be a `choice` of odd sizes"));
                }
                Dim::Range { low, high, log }
            };
            dims.push((name.clone(), dim));
        }
        Ok(Space { dims })
    }

    fn get(&self, name: &str) -> Option<&Dim> {
        self.dims.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }
}

/// One trial's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialConfig {
    pub widths: Vec<usize>,
    pub kernels: Vec<usize>,
    pub dense: usize,
    pub dropout: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub aug_strength: f64,
}

fn draw(d: &Dim, int: bool, rng: &mut ChaCha8Rng) -> f64 {
    match d {
        Dim::Choice { choice } => choice[rng.random_range(0..choice.len())],
        Dim::Range { low, high, log } => {
            if low == high {
                return *low;
            }
            let u: f64 = rng.random_range(0.0..1.0);
            if int {
                // Uniform over the whole numbers low..=high (log: over their logs).
                let v = if *log {
                    (low.ln() + u * ((high + 1.0).ln() - low.ln()))
                        .exp()
                        .floor()
                } else {
                    (low + u * (high - low + 1.0)).floor()
                };
                v.clamp(*low, *high)
            } else if *log {
                (low.ln() + u * (high.ln() - low.ln())).exp()
            } else {
                low + u * (high - low)
            }
        }
    }
}

/// Sample trial `trial` of the search seeded `seed`; keys not in the space keep `base`'s value.
pub fn sample(space: &Space, base: &TrialConfig, seed: u64, trial: u64) -> TrialConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ trial.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut pick = |name: &str, int: bool, default: f64| match space.get(name) {
        Some(d) => draw(d, int, &mut rng),
        None => default,
    };
    let blocks = pick("blocks", true, base.widths.len() as f64) as usize;
    let mut widths: Vec<usize> = (0..blocks)
        .map(|i| {
            let fallback = base.widths[i.min(base.widths.len() - 1)] as f64;
            pick("filters", true, fallback) as usize
        })
        .collect();
    widths.sort_unstable();
    let kernels: Vec<usize> = if space.get("kernel").is_some() {
        (0..blocks)
            .map(|_| pick("kernel", true, 3.0) as usize)
            .collect()
    } else if base.kernels.len() == blocks {
        base.kernels.clone()
    } else {
        Vec::new()
    };
    TrialConfig {
        widths,
        kernels,
        dense: pick("dense", true, base.dense as f64) as usize,
        dropout: pick("dropout", false, base.dropout),
        lr: pick("lr", false, base.lr),
        weight_decay: pick("weight_decay", false, base.weight_decay),
        batch_size: pick("batch_size", true, base.batch_size as f64) as usize,
        aug_strength: pick("aug_strength", false, base.aug_strength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Result<Space, SpaceError> {
        Space::parse(&text.parse::<toml::Table>().unwrap())
    }

    fn base() -> TrialConfig {
        TrialConfig {
            widths: vec![32, 64, 128, 192],
            kernels: vec![],
            dense: 0,
            dropout: 0.3,
            lr: 2e-3,
            weight_decay: 5e-4,
            batch_size: 64,
            aug_strength: 1.0,
        }
    }

    #[test]
    fn samples_stay_in_the_space_and_are_reproducible() {
        let s = space(
            "blocks = { choice = [2, 3] }\nfilters = { low = 8, high = 64, log = true }\n\
             kernel = { choice = [3, 5] }\nlr = { low = 1e-4, high = 1e-2, log = true }\n\
             dropout = { low = 0.1, high = 0.5 }\n",
        )
        .unwrap();
        let mut seen_lr = Vec::new();
        for t in 0..200 {
            let c = sample(&s, &base(), 42, t);
            assert_eq!(c, sample(&s, &base(), 42, t), "trial {t} is reproducible");
            assert!([2, 3].contains(&c.widths.len()));
            assert_eq!(c.kernels.len(), c.widths.len());
            assert!(c.widths.windows(2).all(|w| w[0] <= w[1]), "{:?}", c.widths);
            assert!(c.widths.iter().all(|&w| (8..=64).contains(&w)));
            assert!(c.kernels.iter().all(|&k| k == 3 || k == 5));
            assert!((1e-4..=1e-2).contains(&c.lr));
            assert!((0.1..=0.5).contains(&c.dropout));
            assert_eq!(
                (c.batch_size, c.dense),
                (64, 0),
                "unsearched keys keep the base"
            );
            seen_lr.push(c.lr.log10());
        }
        // log scale: about half of the draws fall below the geometric middle (1e-3).
        let below = seen_lr.iter().filter(|&&l| l < -3.0).count();
        assert!((70..=130).contains(&below), "{below} of 200 below 1e-3");
        assert_ne!(sample(&s, &base(), 42, 0), sample(&s, &base(), 43, 0));
    }

    #[test]
    fn invalid_spaces_name_the_key() {
        for (text, key) in [
            ("lr = { choice = [] }", "space.lr.choice"),
            ("lr = { low = 0.1, high = 0.01 }", "space.lr"),
            ("depth = { choice = [2] }", "space.depth"),
            ("lr = { low = 0.0, high = 0.1, log = true }", "space.lr.low"),
            (
                "weight_decay = { low = 0.0, high = 0.1, log = true }",
                "space.weight_decay.low",
            ),
            ("kernel = { choice = [4] }", "space.kernel.choice"),
            ("blocks = { choice = [2.5] }", "space.blocks.choice"),
            ("blocks = { choice = [9] }", "space.blocks.choice"),
            ("dropout = { low = 0.1 }", "space.dropout"),
            (
                "dropout = { low = 0.1, high = 0.2, step = 0.1 }",
                "space.dropout.step",
            ),
            ("dropout = 0.3", "space.dropout"),
            ("lr = { choice = [\"fast\"] }", "space.lr.choice"),
        ] {
            let e = space(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {}", e.message);
        }
    }
}
