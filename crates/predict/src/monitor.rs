//! Watching `fer-predict serve` once deployed: Prometheus metrics and a score-drift check.
//!
//! Reads: the model's validation scores (`predictions.parquet`'s `val` rows, a CNN's
//! p(happy) or an SVM's decision values, see [`reference_scores`]; raw, so `fer-predict
//! serve` maps them through the model's calibration before handing them over) as the drift
//! check's reference. Writes nothing: no image and no
//! single score is ever stored; the service keeps counters, histograms and a window of the
//! most recent `p_happy` values in memory only.
//!
//! `GET /metrics` answers in Prometheus's text format (rendered by the `prometheus-client`
//! crate, the Prometheus project's own Rust client):
//! - `fer_requests_total{route, code}`: requests per route (`/predict`, `/frames`, `/`,
//!   `/live.json`, `/health`, `/metrics`, `other`) and HTTP status;
//! - `fer_request_duration_seconds{route}`: latency histogram;
//! - `fer_faces_detected_total`, `fer_faces_scored_total`, `fer_images_without_face_total`;
//! - `fer_refusals_total{reason}`: requests and connections refused, by reason (budget,
//!   body, rate, token, origin, content_type, shed, timeout, connections, write: see
//!   [`crate::serve::access::Refusal`]);
//! - `fer_p_happy`: the distribution of the scores served (histogram, buckets of 0.1);
//! - `fer_drift_ks_statistic`, `fer_drift_ks_critical`, `fer_drift_detected` (0 or 1),
//!   `fer_drift_window_scores`: the drift check below.
//!
//! # The drift check
//! The last `window` scores served (default 500) are compared with the validation scores by
//! the two-sample Kolmogorov-Smirnov statistic D (the largest gap between the two empirical
//! distribution functions; unchanged by any increasing map applied to both samples, such as
//! the calibration the reference is mapped through). Rules, in order:
//! 1. with no reference (a model folder without validation scores) the check is off;
//! 2. with fewer than `min_scores` recent scores (default 100) nothing is said;
//! 3. otherwise the scores have drifted when D exceeds the critical value at level `alpha`
//!    (default 0.001): `c(alpha) * sqrt((n + m) / (n m))`, `c(alpha) = sqrt(-ln(alpha / 2) / 2)`
//!    (the asymptotic two-sample bound).
//!
//! A change of state is printed on stderr (`drift: ...`) and `/health` carries the current one.
//! A shop's customers are not FER2013's test faces, so some drift is expected at first: the
//! check says that the scores have parted from validation, not that the model is wrong.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// The drift check's settings.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    /// Recent scores compared with the reference.
    pub window: usize,
    /// Fewest recent scores before the check says anything.
    pub min_scores: usize,
    /// The test's level.
    pub alpha: f64,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            window: 500,
            min_scores: 100,
            alpha: 0.001,
        }
    }
}

/// The outcome of one drift check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Drift {
    /// Two-sample Kolmogorov-Smirnov statistic D.
    pub ks: f64,
    /// D above it means drift at the chosen level.
    pub critical: f64,
    pub drifted: bool,
    /// Recent scores compared.
    pub recent: usize,
    /// Reference scores.
    pub reference: usize,
}

/// The two-sample Kolmogorov-Smirnov statistic of two **sorted** samples (0 if either is
/// empty). Ties are stepped over together, so equal samples give 0.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// The critical value of D at level `alpha` for samples of `n` and `m` (see the module doc).
pub fn ks_critical(alpha: f64, n: usize, m: usize) -> f64 {
    let c = (-(alpha / 2.0).ln() / 2.0).sqrt();
    let (n, m) = (n as f64, m as f64);
    c * ((n + m) / (n * m)).sqrt()
}

/// The drift check of `recent` scores against the **sorted** `reference` (rules 2 and 3 of the
/// module doc); `None` while there are too few recent scores.
pub fn check_drift(reference: &[f64], recent: &[f64], o: &DriftOptions) -> Option<Drift> {
    if reference.is_empty() || recent.len() < o.min_scores.max(1) {
        return None;
    }
    let mut r: Vec<f64> = recent.iter().copied().filter(|v| v.is_finite()).collect();
    r.sort_by(f64::total_cmp);
    let ks = ks_statistic(reference, &r);
    let critical = ks_critical(o.alpha, reference.len(), r.len());
    Some(Drift {
        ks,
        critical,
        drifted: ks > critical,
        recent: r.len(),
        reference: reference.len(),
    })
}

/// The validation scores of a model folder, raw (as the training stage wrote them): the
/// `val` rows of its `predictions.parquet`, a CNN's `p_happy`, or for an SVM folder
/// (`svm`: the model scored, e.g. `hog/rbf`) that SVM's decision values. `None` when the
/// folder has no such rows (an older layout, or another model's folder).
pub fn reference_scores(dir: &Path, svm: Option<&str>) -> Option<Vec<f64>> {
    let path = dir.join("predictions.parquet");
    let v: Vec<f64> = match svm {
        None => fer_schema::predictions::read(&path)
            .ok()?
            .into_iter()
            .filter(|r| r.split == fer_core::Split::Val)
            .map(|r| r.p_happy)
            .collect(),
        Some(name) => fer_schema::predictions::read_svm(&path)
            .ok()?
            .into_iter()
            .filter(|r| r.split == fer_core::Split::Val && r.model == name)
            .map(|r| r.decision)
            .collect(),
    };
    let v: Vec<f64> = v.into_iter().filter(|p| p.is_finite()).collect();
    (!v.is_empty()).then_some(v)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// The service's metrics and drift state.
pub struct Monitor {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    refusals: Family<ReasonLabel, Counter>,
    faces_detected: Counter,
    faces_scored: Counter,
    no_face: Counter,
    p_happy: Histogram,
    ks: Gauge<f64, AtomicU64>,
    critical: Gauge<f64, AtomicU64>,
    drifted: Gauge,
    window_len: Gauge,
    /// Sorted reference scores (empty: the check is off).
    reference: Vec<f64>,
    options: DriftOptions,
    state: Mutex<DriftState>,
}

#[derive(Debug, Default)]
struct DriftState {
    recent: VecDeque<f64>,
    last: Option<Drift>,
}

/// The route label of a request path: the service's routes, else `other` (so a scan of
/// random paths cannot grow the metrics without bound).
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/predict" => "/predict",
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/frames" => "/frames",
        "/live.json" => "/live.json",
        "/" => "/",
        _ => "other",
    }
}

impl Monitor {
    /// A monitor with `reference` validation scores (any order; `None`: drift check off) and
    /// the `reasons` a request can be refused for (each series exists from the start, at 0).
    pub fn new(reference: Option<Vec<f64>>, options: DriftOptions, reasons: &[&str]) -> Monitor {
        let mut registry = Registry::with_prefix("fer");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its response",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let refusals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "refusals",
            "Requests and connections refused, by reason",
            refusals.clone(),
        );
        for r in reasons {
            let _ = refusals.get_or_create(&ReasonLabel {
                reason: r.to_string(),
            });
        }
        let faces_detected = Counter::default();
        registry.register(
            "faces_detected",
            "Faces the detector found",
            faces_detected.clone(),
        );
        let faces_scored = Counter::default();
        registry.register(
            "faces_scored",
            "Faces scored (at most --max-faces per image)",
            faces_scored.clone(),
        );
        let no_face = Counter::default();
        registry.register(
            "images_without_face",
            "Images in which no face was found",
            no_face.clone(),
        );
        let p_happy = Histogram::new((1..=10).map(|i| i as f64 / 10.0));
        registry.register("p_happy", "p(happy) of the faces scored", p_happy.clone());
        let ks = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "drift_ks_statistic",
            "Kolmogorov-Smirnov D of the recent scores against validation (0 until enough scores)",
            ks.clone(),
        );
        let critical = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "drift_ks_critical",
            "D above this value means drift at the chosen level",
            critical.clone(),
        );
        let drifted = Gauge::default();
        registry.register(
            "drift_detected",
            "1 when the recent scores have parted from validation",
            drifted.clone(),
        );
        let window_len = Gauge::default();
        registry.register(
            "drift_window_scores",
            "Recent scores held for the drift check",
            window_len.clone(),
        );
        let mut reference = reference.unwrap_or_default();
        reference.retain(|v| v.is_finite());
        reference.sort_by(f64::total_cmp);
        Monitor {
            registry,
            requests,
            latency,
            refusals,
            faces_detected,
            faces_scored,
            no_face,
            p_happy,
            ks,
            critical,
            drifted,
            window_len,
            reference,
            options,
            state: Mutex::new(DriftState::default()),
        }
    }

    /// Count a refusal (a `reason` given to [`Monitor::new`]; others are not counted, so the
    /// series never grow).
    pub fn refusal(&self, reason: &str) {
        if let Some(c) = self.refusals.get(&ReasonLabel {
            reason: reason.to_string(),
        }) {
            c.inc();
        }
    }

    /// Count a request and its latency.
    pub fn request(&self, path: &str, code: u16, seconds: f64) {
        let route = route_label(path).to_string();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                code,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(seconds);
    }

    /// Record one image's outcome: the faces found and the scores served. Returns the drift
    /// check's new state when it changed (the caller logs it).
    pub fn image(&self, detected: usize, scores: &[f64]) -> Option<Drift> {
        self.faces_detected.inc_by(detected as u64);
        self.faces_scored.inc_by(scores.len() as u64);
        if scores.is_empty() {
            self.no_face.inc();
        }
        for &p in scores {
            self.p_happy.observe(p);
        }
        if self.reference.is_empty() || scores.is_empty() {
            return None;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for &p in scores {
            if st.recent.len() == self.options.window.max(1) {
                st.recent.pop_front();
            }
            st.recent.push_back(p);
        }
        self.window_len.set(st.recent.len() as i64);
        let recent: Vec<f64> = st.recent.iter().copied().collect();
        let d = check_drift(&self.reference, &recent, &self.options)?;
        self.ks.set(d.ks);
        self.critical.set(d.critical);
        self.drifted.set(i64::from(d.drifted));
        let changed = st.last.as_ref().map(|l| l.drifted) != Some(d.drifted);
        st.last = Some(d.clone());
        changed.then_some(d)
    }

    /// The drift check for `/health`: `"off"` without a reference, `"waiting"` before
    /// `min_scores`, else the last check.
    pub fn drift_json(&self) -> serde_json::Value {
        if self.reference.is_empty() {
            return serde_json::json!({"status": "off", "reason": "the model folder has no validation scores"});
        }
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &st.last {
            None => serde_json::json!({
                "status": "waiting",
                "recent": st.recent.len(),
                "min_scores": self.options.min_scores,
            }),
            Some(d) => serde_json::json!({
                "status": if d.drifted { "drifted" } else { "ok" },
                "ks": d.ks,
                "critical": d.critical,
                "recent": d.recent,
                "reference": d.reference,
                "alpha": self.options.alpha,
            }),
        }
    }

    /// The metrics in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry)
            .expect("writing to a String cannot fail");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_of_equal_samples_is_zero_and_of_disjoint_ones_is_one() {
        let a = [0.1, 0.2, 0.2, 0.7];
        assert_eq!(ks_statistic(&a, &a), 0.0);
        assert_eq!(ks_statistic(&[0.1, 0.2], &[0.8, 0.9]), 1.0);
        // Hand-computed: the largest gap is at 0.2, F_a = 2/3 and F_b = 0.
        let d = ks_statistic(&[0.1, 0.2, 0.9], &[0.3, 0.4, 0.5]);
        assert!((d - 2.0 / 3.0).abs() < 1e-12, "{d}");
        assert!((ks_critical(0.05, 100, 100) - 1.3581 * (0.02f64).sqrt()).abs() < 1e-3);
    }

    #[test]
    fn an_svm_folder_gives_its_own_models_validation_decisions() {
        use fer_schema::predictions::{SvmPrediction, write_svm};
        let d = tempfile::tempdir().unwrap();
        let row = |model: &str, split, decision| SvmPrediction {
            model: model.into(),
            feature: "hog".into(),
            kernel: "rbf".into(),
            split,
            row: 0,
            id: "x".into(),
            label: 0,
            decision,
            pred: 0,
            decisions: Vec::new(),
        };
        let rows = [
            row("hog/rbf", fer_core::Split::Val, 0.5),
            row("hog/rbf", fer_core::Split::Test, 9.0),
            row("raw/rbf", fer_core::Split::Val, -1.0),
            row("hog/rbf", fer_core::Split::Val, -0.25),
        ];
        write_svm(&d.path().join("predictions.parquet"), &rows).unwrap();
        assert_eq!(
            reference_scores(d.path(), Some("hog/rbf")),
            Some(vec![0.5, -0.25])
        );
        assert_eq!(reference_scores(d.path(), Some("hog/linear")), None);
        // Not a CNN's table.
        assert_eq!(reference_scores(d.path(), None), None);
    }
}
