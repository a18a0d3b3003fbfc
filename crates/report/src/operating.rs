//! The operating point: the "not happy" alert threshold that meets the deployer's one goal at
//! the shop's own mix of customers.
//!
//! A shop states `[report] base_rate`, the share of its customers who are not happy (default:
//! the validation split's own share), and one goal: `alert_precision` (the share of alerts that
//! must be right) or `alert_budget` (at most this many alerts per 100 customers). Validation
//! predictions are reweighted to that mix, which leaves recall (the share of unhappy faces
//! flagged) and the false-alarm rate (the share of happy faces flagged) as they are and moves
//! what depends on the mix:
//!
//! - precision at base rate b: `b * recall / (b * recall + (1 - b) * false_alarm_rate)`;
//! - alerts per 100 customers: `100 * (b * recall + (1 - b) * false_alarm_rate)`.
//!
//! These are the importance-weighted figures (weight `b / v` on each not-happy image,
//! `(1 - b) / (1 - v)` on each happy one, `v` the split's own not-happy share), written in
//! rates. [`choose`] is a pure function of the scored images, the base rate, the goal and the
//! model's default threshold; its tie-break rules are in its doc.
//!
//! Reads and writes nothing: `crate::recommend` and the report's "Operating point" section
//! use it.

use crate::stats::{NOT_HAPPY, ThresholdRule};

/// The mixes of the pipelines a reader compares the shop with: the share of not-happy images
/// in FER2013's training split as each protocol draws it (`pipelines/seed.toml`: 2,022 of
/// 4,022; `pipelines/full.toml`: 21,494 of 28,709).
pub const REFERENCE_MIXES: [(&str, f64); 2] = [
    ("seed (about half unhappy)", 2022.0 / 4022.0),
    ("full (about three quarters unhappy)", 21494.0 / 28709.0),
];

/// The one goal the threshold must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// At least this share of "not happy" alerts are right (0 < p <= 1).
    Precision(f64),
    /// At most this many alerts per 100 customers (0 < a <= 100).
    Budget(f64),
}

impl Goal {
    /// The `[report]` key that states it.
    pub fn key(&self) -> &'static str {
        match self {
            Goal::Precision(_) => "alert_precision",
            Goal::Budget(_) => "alert_budget",
        }
    }
    pub fn value(&self) -> f64 {
        match self {
            Goal::Precision(v) | Goal::Budget(v) => *v,
        }
    }
}

/// The default goal when `[report]` states none: today's 90% alert precision.
pub const DEFAULT_GOAL: Goal = Goal::Precision(0.9);

/// The checked operating-point params (from `[report]`'s `base_rate`, `alert_precision` and
/// `alert_budget`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingParams {
    /// The stated share of unhappy customers; `None`: the validation split's own share.
    pub base_rate: Option<f64>,
    pub goal: Goal,
    /// Whether the goal was stated (`false`: [`DEFAULT_GOAL`]).
    pub goal_stated: bool,
}

impl OperatingParams {
    /// Check the three keys. An error is `(key, message)`, the key as written in `[report]`.
    pub fn check(
        base_rate: Option<f64>,
        alert_precision: Option<f64>,
        alert_budget: Option<f64>,
    ) -> Result<OperatingParams, (&'static str, String)> {
        if let Some(b) = base_rate
            && !(b > 0.0 && b < 1.0)
        {
            return Err((
                "base_rate",
                format!("{b} is not a share of unhappy customers strictly between 0 and 1"),
            ));
        }
        let goal = match (alert_precision, alert_budget) {
            (Some(p), Some(a)) => {
                return Err((
                    "alert_precision",
                    format!(
                        "alert_precision = {p} and alert_budget = {a} are both set: state one goal \
                         (a precision for alerts, or alerts per 100 customers)"
                    ),
                ));
            }
            (Some(p), None) => {
                if !(p > 0.0 && p <= 1.0) {
                    return Err(("alert_precision", format!("{p} is not in (0, 1]")));
                }
                Some(Goal::Precision(p))
            }
            (None, Some(a)) => {
                if !(a > 0.0 && a <= 100.0) {
                    return Err((
                        "alert_budget",
                        format!("{a} is not a number of alerts per 100 customers in (0, 100]"),
                    ));
                }
                Some(Goal::Budget(a))
            }
            (None, None) => None,
        };
        Ok(OperatingParams {
            base_rate,
            goal: goal.unwrap_or(DEFAULT_GOAL),
            goal_stated: goal.is_some(),
        })
    }
}

impl crate::ReportParams {
    /// The checked operating-point params of `[report]` (see [`OperatingParams::check`]).
    pub fn operating(&self) -> Result<OperatingParams, (&'static str, String)> {
        OperatingParams::check(self.base_rate, self.alert_precision, self.alert_budget)
    }
}

/// One scored image: its score (higher = happy) and whether it is truly not happy.
pub type Scored = (f64, bool);

/// Scored images from predictions.
pub fn scored(preds: &[crate::load::Pred]) -> Vec<Scored> {
    preds
        .iter()
        .map(|p| (p.score, p.label == NOT_HAPPY))
        .collect()
}

/// The share of not-happy images; `None` when there are none of one class.
pub fn share_not_happy(s: &[Scored]) -> Option<f64> {
    let nh = s.iter().filter(|x| x.1).count();
    (nh > 0 && nh < s.len()).then(|| nh as f64 / s.len() as f64)
}

/// The importance weights that move a split with not-happy share `own` to base rate `b`:
/// (not happy, happy) = (b / own, (1 - b) / (1 - own)).
pub fn class_weights(own: f64, b: f64) -> (f64, f64) {
    (b / own, (1.0 - b) / (1.0 - own))
}

/// The alert figures at one threshold ("not happy" when score < threshold), at base rate `b`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Point {
    pub threshold: f64,
    /// Images that raise an alert (unweighted count).
    pub alerts: u64,
    /// Share of not-happy images flagged (independent of the mix).
    pub recall: f64,
    /// Share of happy images flagged (independent of the mix).
    pub false_alarm_rate: f64,
    /// Share of alerts that are right at base rate `b` (NaN without alerts).
    pub precision: f64,
    /// Alerts per 100 customers at base rate `b`.
    pub alerts_per_100: f64,
    /// (recall + 1 - false_alarm_rate) / 2 (independent of the mix).
    pub balanced_accuracy: f64,
}

/// The figures of `s` at `threshold`, reweighted to base rate `b`. A split without images of
/// one class gives NaN rates for that class.
pub fn point(s: &[Scored], b: f64, threshold: f64) -> Point {
    let (mut tp, mut fp, mut nh, mut h) = (0u64, 0u64, 0u64, 0u64);
    for &(score, not_happy) in s {
        let alert = score < threshold;
        if not_happy {
            nh += 1;
            tp += u64::from(alert);
        } else {
            h += 1;
            fp += u64::from(alert);
        }
    }
    let rate = |a: u64, n: u64| {
        if n == 0 {
            f64::NAN
        } else {
            a as f64 / n as f64
        }
    };
    let (recall, far) = (rate(tp, nh), rate(fp, h));
    let flagged = b * recall + (1.0 - b) * far;
    Point {
        threshold,
        alerts: tp + fp,
        recall,
        false_alarm_rate: far,
        precision: if tp + fp == 0 {
            f64::NAN
        } else {
            b * recall / flagged
        },
        alerts_per_100: 100.0 * flagged,
        balanced_accuracy: (recall + 1.0 - far) / 2.0,
    }
}

/// The candidate thresholds: the midpoints between consecutive distinct finite scores, and
/// `default` (the model's plain decision), sorted ascending, without repeats.
pub fn candidates(s: &[Scored], default: f64) -> Vec<f64> {
    let mut scores: Vec<f64> = s.iter().map(|x| x.0).filter(|x| x.is_finite()).collect();
    scores.sort_by(f64::total_cmp);
    scores.dedup();
    let mut c: Vec<f64> = scores.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    if default.is_finite() {
        c.push(default);
    }
    c.sort_by(f64::total_cmp);
    c.dedup();
    c
}

/// Every candidate threshold's figures at base rate `b`, ascending by threshold.
pub fn sweep(s: &[Scored], b: f64, default: f64) -> Vec<Point> {
    candidates(s, default)
        .into_iter()
        .map(|t| point(s, b, t))
        .collect()
}

/// The threshold chosen, its figures, and whether it meets the goal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub point: Point,
    /// `false`: no candidate meets the goal, and `point` is the balanced-accuracy fallback.
    pub met: bool,
    pub rule: ThresholdRule,
}

const EPS: f64 = 1e-12;

/// Whether `p` reaches `goal` (at the base rate its figures were computed at). A point
/// without alerts never does.
pub fn meets(p: &Point, goal: Goal) -> bool {
    p.alerts > 0
        && match goal {
            Goal::Precision(t) => p.precision >= t - EPS,
            Goal::Budget(a) => p.alerts_per_100 <= a + EPS,
        }
}

/// Choose the alert threshold on `val` (validation predictions) for `goal` at base rate `b`,
/// among [`candidates`]`(val, default)`:
///
/// 1. keep the thresholds that meet the goal ([`meets`]: at least one alert, and precision
///    at `b` >= the target, or alerts per 100 customers at `b` <= the budget);
/// 2. among them, the highest recall of not-happy faces;
/// 3. ties: the fewest alerts per 100 customers (so the highest precision);
/// 4. ties: the lower threshold.
///
/// When no threshold meets the goal, `met` is `false` and the threshold is the one with the
/// highest balanced accuracy (which does not depend on the mix; ties: fewer alerts per 100,
/// then the lower threshold), `rule` [`ThresholdRule::BalancedAccuracy`]: the caller must say
/// so. `None` when `val` has no candidate threshold (fewer than two distinct scores and no
/// finite default).
pub fn choose(val: &[Scored], b: f64, goal: Goal, default: f64) -> Option<Choice> {
    let pts = sweep(val, b, default);
    // a better than b by the key (higher first), then fewer alerts, then lower threshold
    // (the points are ascending by threshold, so the first of equals is the lower one).
    let pick = |key: fn(&Point) -> f64, ok: &dyn Fn(&Point) -> bool| {
        let mut best: Option<&Point> = None;
        for p in pts.iter().filter(|p| ok(p)) {
            let better = match best {
                None => true,
                Some(q) => {
                    let (kp, kq) = (key(p), key(q));
                    kp > kq + EPS
                        || ((kp - kq).abs() <= EPS && p.alerts_per_100 < q.alerts_per_100 - EPS)
                }
            };
            if better {
                best = Some(p);
            }
        }
        best.copied()
    };
    if let Some(p) = pick(|p| p.recall, &|p| meets(p, goal)) {
        return Some(Choice {
            point: p,
            met: true,
            rule: match goal {
                Goal::Precision(_) => ThresholdRule::PrecisionTarget,
                Goal::Budget(_) => ThresholdRule::AlertBudget,
            },
        });
    }
    pick(|p| p.balanced_accuracy, &|p| {
        p.balanced_accuracy.is_finite()
    })
    .map(|p| Choice {
        point: p,
        met: false,
        rule: ThresholdRule::BalancedAccuracy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// Validation of 10: not-happy scores 0.1 0.2 0.3 0.4 0.8, happy 0.35 0.6 0.7 0.9 0.95.
    fn val() -> Vec<Scored> {
        vec![
            (0.1, true),
            (0.2, true),
            (0.3, true),
            (0.35, false),
            (0.4, true),
            (0.6, false),
            (0.7, false),
            (0.8, true),
            (0.9, false),
            (0.95, false),
        ]
    }

    #[test]
    fn reweighting_moves_precision_and_alerts_but_not_recall() {
        let v = val();
        assert_abs_diff_eq!(share_not_happy(&v).unwrap(), 0.5);
        // Threshold 0.5: alerts 0.1 0.2 0.3 0.35 0.4 -> 4 of 5 unhappy flagged, 1 of 5 happy.
        let own = point(&v, 0.5, 0.5);
        assert_eq!(own.alerts, 5);
        assert_abs_diff_eq!(own.recall, 0.8);
        assert_abs_diff_eq!(own.false_alarm_rate, 0.2);
        assert_abs_diff_eq!(own.precision, 0.8, epsilon = 1e-12);
        assert_abs_diff_eq!(own.alerts_per_100, 50.0, epsilon = 1e-12);
        // At 3/4 unhappy: precision 0.75*0.8 / (0.75*0.8 + 0.25*0.2) = 0.6/0.65.
        let full = point(&v, 0.75, 0.5);
        assert_abs_diff_eq!(full.recall, 0.8);
        assert_abs_diff_eq!(full.precision, 0.6 / 0.65, epsilon = 1e-12);
        assert_abs_diff_eq!(full.alerts_per_100, 65.0, epsilon = 1e-12);
        // The same figures with explicit importance weights: 3/2 per unhappy, 1/2 per happy.
        let (wn, wh) = class_weights(0.5, 0.75);
        assert_abs_diff_eq!(wn, 1.5);
        assert_abs_diff_eq!(wh, 0.5);
        let (tp, fp) = (4.0 * wn, 1.0 * wh);
        assert_abs_diff_eq!(full.precision, tp / (tp + fp), epsilon = 1e-12);
        assert_abs_diff_eq!(
            full.alerts_per_100,
            100.0 * (tp + fp) / 10.0,
            epsilon = 1e-12
        );
    }

    #[test]
    fn precision_goal_met_takes_the_highest_recall() {
        let v = val();
        // Candidates: the midpoints 0.15 0.25 0.325 0.375 0.5 0.65 0.75 0.85 0.925 (the default
        // 0.5 is one of them). At the validation mix (0.5), 80% precision holds up to 0.5
        // (4 right of 5 alerts, recall 0.8); 0.65 gives 4 of 6.
        let c = choose(&v, 0.5, Goal::Precision(0.8), 0.5).unwrap();
        assert!(c.met);
        assert_eq!(c.rule, ThresholdRule::PrecisionTarget);
        assert_abs_diff_eq!(c.point.threshold, 0.5);
        assert_abs_diff_eq!(c.point.recall, 0.8);
        // 0.9 at the validation mix: only the first three (all unhappy) reach it: 0.325.
        let c = choose(&v, 0.5, Goal::Precision(0.9), 0.5).unwrap();
        assert!(c.met);
        assert_abs_diff_eq!(c.point.threshold, 0.325);
        assert_abs_diff_eq!(c.point.recall, 0.6);
        assert_abs_diff_eq!(c.point.precision, 1.0);
    }

    #[test]
    fn a_higher_base_rate_moves_the_threshold_up() {
        // At 3/4 unhappy, threshold 0.5 has precision 0.923 >= 0.9, so it beats 0.325.
        let c = choose(&val(), 0.75, Goal::Precision(0.9), 0.5).unwrap();
        assert!(c.met);
        assert_abs_diff_eq!(c.point.threshold, 0.5);
        assert_abs_diff_eq!(c.point.recall, 0.8);
        assert_abs_diff_eq!(c.point.alerts_per_100, 65.0, epsilon = 1e-12);
    }

    #[test]
    fn a_goal_out_of_reach_says_so_and_falls_back_to_balanced_accuracy() {
        // The lowest score is a happy face, so precision never reaches 60%.
        let v: Vec<Scored> = vec![(0.1, false), (0.2, true), (0.3, false), (0.4, true)];
        // Candidates 0.15 0.25 0.35 and the default 0.5; precision at the own mix (0.5):
        // 0/1, 1/2, 1/3, 2/4.
        let c = choose(&v, 0.5, Goal::Precision(0.6), 0.5).unwrap();
        assert!(!c.met);
        assert_eq!(c.rule, ThresholdRule::BalancedAccuracy);
        // Balanced accuracy: 0.15 -> (0 + 0.5)/2 = 0.25; 0.25 -> (0.5 + 0.5)/2 = 0.5;
        // 0.35 -> (0.5 + 0)/2 = 0.25; 0.5 -> (1 + 0)/2 = 0.5. Tie 0.25 vs 0.5: fewer alerts
        // per 100 (50 vs 100) wins: 0.25.
        assert_abs_diff_eq!(c.point.threshold, 0.25);
        assert_abs_diff_eq!(c.point.balanced_accuracy, 0.5);
    }

    #[test]
    fn budget_goal_takes_the_most_recall_within_the_budget() {
        let v = val();
        // At the own mix, alerts per 100 = 10 per flagged image. A budget of 35 allows 3
        // images: threshold 0.325 (the three lowest, all unhappy).
        let c = choose(&v, 0.5, Goal::Budget(35.0), 0.5).unwrap();
        assert!(c.met);
        assert_eq!(c.rule, ThresholdRule::AlertBudget);
        assert_abs_diff_eq!(c.point.threshold, 0.325);
        assert_abs_diff_eq!(c.point.alerts_per_100, 30.0, epsilon = 1e-12);
        // At 3/4 unhappy each unhappy image weighs 15 per 100, each happy one 5: three unhappy
        // = 45 > 35, so two (30): threshold 0.25.
        let c = choose(&v, 0.75, Goal::Budget(35.0), 0.5).unwrap();
        assert_abs_diff_eq!(c.point.threshold, 0.25);
        assert_abs_diff_eq!(c.point.alerts_per_100, 30.0, epsilon = 1e-12);
        // A budget exactly met counts as met: 45 at 3/4 -> 0.325.
        let c = choose(&v, 0.75, Goal::Budget(45.0), 0.5).unwrap();
        assert_abs_diff_eq!(c.point.threshold, 0.325);
        // Below one image's weight: not met, said so.
        let c = choose(&v, 0.75, Goal::Budget(10.0), 0.5).unwrap();
        assert!(!c.met);
        assert_eq!(c.rule, ThresholdRule::BalancedAccuracy);
    }

    #[test]
    fn ties_in_recall_go_to_fewer_alerts_then_the_lower_threshold() {
        // 0.5 and 0.65 both flag 2 of 2 unhappy; 0.65 also flags the happy 0.6: more alerts.
        let v: Vec<Scored> = vec![(0.2, true), (0.4, true), (0.6, false), (0.7, false)];
        // Candidates 0.3, 0.5, 0.65 (+ default 0.9). Budget 100 admits all: recall 1 at 0.5,
        // 0.65 and 0.9; fewest alerts: 0.5.
        let c = choose(&v, 0.5, Goal::Budget(100.0), 0.9).unwrap();
        assert_abs_diff_eq!(c.point.threshold, 0.5);
        // Equal recall and equal alerts: the default 0.45 lies in the same gap (0.4, 0.6) as the
        // midpoint 0.5, so both flag the same two faces; the lower threshold wins.
        let c = choose(&v, 0.5, Goal::Precision(1.0), 0.45).unwrap();
        assert!(c.met);
        assert_abs_diff_eq!(c.point.threshold, 0.45);
    }

    #[test]
    fn params_check_names_the_key() {
        let ok = OperatingParams::check(None, None, None).unwrap();
        assert_eq!(ok.goal, DEFAULT_GOAL);
        assert!(!ok.goal_stated);
        assert_eq!(ok.base_rate, None);
        let b = OperatingParams::check(Some(0.75), None, Some(5.0)).unwrap();
        assert_eq!(b.goal, Goal::Budget(5.0));
        assert!(b.goal_stated);
        let both = OperatingParams::check(None, Some(0.9), Some(5.0)).unwrap_err();
        assert!(both.1.contains("alert_precision") && both.1.contains("alert_budget"));
        for (br, key) in [
            (0.0, "base_rate"),
            (1.0, "base_rate"),
            (f64::NAN, "base_rate"),
        ] {
            assert_eq!(
                OperatingParams::check(Some(br), None, None).unwrap_err().0,
                key
            );
        }
        assert_eq!(
            OperatingParams::check(None, Some(1.5), None).unwrap_err().0,
            "alert_precision"
        );
        assert_eq!(
            OperatingParams::check(None, None, Some(0.0)).unwrap_err().0,
            "alert_budget"
        );
    }
}
