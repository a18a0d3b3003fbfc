//! ASHA's scheduling, pure functions of the params and the search state: the rungs, what
//! to run next (promotion, else a new trial), when to train the leader on to `max_epochs`,
//! whether a new trial can still reach its first rung, and the winner with its tie-breaks;
//! plus the trial and state types they decide over.

use crate::params::{Strategy, TuneParams};
use crate::space::TrialConfig;
use fer_train::train;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

impl TuneParams {
    /// Epochs at the end of each rung: `min_epochs * reduction^k`, the last one `max_epochs`
    /// (random search: one rung, `max_epochs`).
    pub fn rungs(&self) -> Vec<usize> {
        if self.strategy == Strategy::Random {
            return vec![self.max_epochs];
        }
        let mut r = vec![];
        let mut e = self.min_epochs;
        while e < self.max_epochs {
            r.push(e);
            e *= self.reduction;
        }
        r.push(self.max_epochs);
        r
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Completed,
    Pruned,
    Failed,
    Stopped,
}

impl Status {
    /// [`Status::as_str`]'s inverse.
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Running,
            Status::Completed,
            Status::Pruned,
            Status::Failed,
            Status::Stopped,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Pruned => "pruned",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        }
    }
}

/// Validation figures of a trial's best checkpoint at the end of a rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    pub epochs: usize,
    pub val_acc: f64,
    pub val_loss: f64,
    /// Validation macro F1 (more than two classes only: the trial's [`Rung::score`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_macro_f1: Option<f64>,
}

impl Rung {
    /// What trials are ranked by: validation macro F1 when there are more than two classes
    /// (seven emotions, where accuracy rewards ignoring the rare classes), else validation
    /// accuracy.
    pub fn score(&self) -> f64 {
        self.val_macro_f1.unwrap_or(self.val_acc)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub id: usize,
    pub config: TrialConfig,
    pub status: Status,
    pub rungs: Vec<Rung>,
    pub epochs_run: usize,
    pub seconds: f64,
    pub error: Option<String>,
    /// Training ended early (patience) or reached `max_epochs`: nothing left to promote.
    pub finished: bool,
    /// Not trained by this search but taken from an earlier run (`reuse_base`): the model
    /// folder it came from, relative to the pipeline's artifacts (`train_cnn/fer-small`).
    #[serde(default)]
    pub reused_from: Option<String>,
}

impl Trial {
    /// Trial `id` as a worker starts it: its configuration, running, nothing trained yet.
    pub fn new(p: &TuneParams, id: usize) -> Trial {
        Trial {
            id,
            config: p.trial_config(id),
            status: Status::Running,
            rungs: vec![],
            epochs_run: 0,
            seconds: 0.0,
            error: None,
            finished: false,
            reused_from: None,
        }
    }
}

/// Trial 0 as the search would have recorded it, built from a finished training run of the
/// base configuration (train-cnn's `epochs.parquet` rows): at each rung, the validation
/// accuracy and loss of the best checkpoint so far (the lowest validation loss, the first
/// one on a tie, as training keeps it). A run that stopped early (patience) ends at the rung
/// it stopped in, as a trial does, and is ranked with its last rung ([`best_trial`]). `seconds` is the run's own training time; it is not
/// counted against this search's clock.
pub fn incumbent_trial(
    p: &TuneParams,
    epochs: &[train::EpochRow],
    seconds: f64,
    from: &str,
) -> Trial {
    let n = epochs.len();
    let (mut best_loss, mut best_acc, mut best_f1, mut i) = (f64::INFINITY, 0.0, None, 0);
    let mut rungs = Vec::new();
    for r in p.rungs() {
        while i < n && epochs[i].epoch <= r {
            if epochs[i].val_loss < best_loss {
                (best_loss, best_acc, best_f1) = (
                    epochs[i].val_loss,
                    epochs[i].val_acc,
                    epochs[i].val_macro_f1,
                );
            }
            i += 1;
        }
        rungs.push(Rung {
            epochs: n.min(r),
            val_acc: best_acc,
            val_loss: best_loss,
            val_macro_f1: best_f1,
        });
        if n <= r {
            break;
        }
    }
    Trial {
        id: 0,
        config: p.base_config(),
        status: Status::Completed,
        rungs,
        epochs_run: n,
        seconds,
        error: None,
        finished: true,
        reused_from: Some(from.to_string()),
    }
}

/// The whole search, saved after every epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchState {
    pub trials: Vec<Trial>,
    /// Wall-clock seconds spent by earlier (interrupted) runs of this search.
    pub elapsed: f64,
    /// Trials another live worker is training right now (a study shared by workers, see
    /// [`crate::study`]; always empty for one process). No rule hands them out, and a
    /// running trial that is not busy is one whose worker stopped: it is handed out again.
    #[serde(skip)]
    pub busy: BTreeSet<usize>,
}

/// What a worker does next ([`decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Train trial `id` to the end of rung `rung`; `last`: the leader's run to `max_epochs`
    /// ([`finish_leader`]), sized to fit, which may end past the time limit.
    Run { id: usize, rung: usize, last: bool },
    /// Nothing to start now, but trials other workers are training may yet earn a promotion.
    Wait,
    /// Nothing left for this worker: every job is done, or the clock has run out (with why,
    /// when there is something to say).
    Done(Option<String>),
}

/// The search's rule, applied whenever a worker asks (one process asks after each job):
/// [`finish_leader`] first, else [`next_job`]; no new job once `spent` reaches the time
/// limit, and no new trial that could not reach its first rung ([`can_reach_first_rung`]).
pub fn decide(p: &TuneParams, st: &SearchState, spent: f64) -> Decision {
    let next = next_job(p, st);
    let (id, rung, last) = match (finish_leader(p, st, spent, next), next) {
        (Some((id, k)), _) => (id, k, true),
        (None, Some((id, k))) => (id, k, false),
        (None, None) if st.busy.is_empty() || spent >= p.time_limit_s => {
            return Decision::Done(None);
        }
        (None, None) => return Decision::Wait,
    };
    if !last && spent >= p.time_limit_s {
        return Decision::Done(None);
    }
    if !last && id == st.trials.len() && !can_reach_first_rung(p, st, spent) {
        return Decision::Done(Some(format!(
            "not starting trial-{id:03}: its first rung would end past the time limit"
        )));
    }
    Decision::Run { id, rung, last }
}

/// What to run next: ASHA's rule. Promote the best not-yet-promoted trial of the highest
/// rung that has one among its top 1/`reduction`; else start a new trial while `max_trials`
/// allows; else nothing. Random search never promotes (it has one rung).
pub fn next_job(p: &TuneParams, st: &SearchState) -> Option<(usize, usize)> {
    if let Some(t) = st
        .trials
        .iter()
        .find(|t| t.status == Status::Running && !st.busy.contains(&t.id))
    {
        // An interrupted job (or one whose worker stopped): finish its rung first.
        return Some((t.id, t.rungs.len()));
    }
    let rungs = p.rungs();
    for k in (0..rungs.len().saturating_sub(1)).rev() {
        let mut at: Vec<&Trial> = st
            .trials
            .iter()
            .filter(|t| t.status != Status::Failed && t.rungs.len() > k)
            .collect();
        at.sort_by(|a, b| {
            b.rungs[k]
                .score()
                .total_cmp(&a.rungs[k].score())
                .then(a.rungs[k].val_loss.total_cmp(&b.rungs[k].val_loss))
                .then(a.id.cmp(&b.id))
        });
        let top = at.len() / p.reduction;
        if let Some(t) = at[..top].iter().find(|t| {
            t.rungs.len() == k + 1
                && !t.finished
                && t.status != Status::Stopped
                && !st.busy.contains(&t.id)
        }) {
            return Some((t.id, k + 1));
        }
    }
    (st.trials.len() < p.max_trials).then_some((st.trials.len(), 0))
}

/// ASHA's last step under a wall clock: train the leader (what [`best_trial`] would pick
/// among the trials this search trains, so not a reused incumbent, which has finished) on to
/// `max_epochs` while there is still time for it, so that it meets the incumbent at full
/// length. Returns `(leader, last rung)` when that
/// must start now: when nothing else is left to run (`next` is `None`), or when running `next`
/// first would leave less than the leader needs (its seconds per epoch so far times the
/// epochs it lacks, plus 10%). `None` when the leader has already finished, or when it would
/// overrun the limit by more than 10% (its best checkpoint is kept instead). Random search
/// trains every trial to `max_epochs`, so it never needs this.
pub fn finish_leader(
    p: &TuneParams,
    st: &SearchState,
    spent: f64,
    next: Option<(usize, usize)>,
) -> Option<(usize, usize)> {
    if p.strategy == Strategy::Random {
        return None;
    }
    let rungs = p.rungs();
    let leader = best_of(st.trials.iter().filter(|t| t.reused_from.is_none()))?;
    if leader.finished
        || leader.epochs_run == 0
        || leader.epochs_run >= p.max_epochs
        || st.busy.contains(&leader.id)
    {
        return None;
    }
    let per_epoch = |t: &Trial| t.seconds / t.epochs_run.max(1) as f64;
    let need = 1.1 * per_epoch(leader) * (p.max_epochs - leader.epochs_run) as f64;
    if spent + need > 1.1 * p.time_limit_s {
        return None;
    }
    let next_cost = match next {
        None => f64::INFINITY,
        Some((id, _)) if id == leader.id => return None, // already heading up the rungs
        Some((id, k)) => {
            let done = st.trials.get(id).map_or(0, |t| t.epochs_run);
            let tried: Vec<&Trial> = st.trials.iter().filter(|t| t.epochs_run > 0).collect();
            let mean = tried.iter().map(|t| t.seconds).sum::<f64>()
                / tried.iter().map(|t| t.epochs_run).sum::<usize>().max(1) as f64;
            let per = st
                .trials
                .get(id)
                .filter(|t| t.epochs_run > 0)
                .map_or(mean, per_epoch);
            per * rungs
                .get(k)
                .copied()
                .unwrap_or(p.max_epochs)
                .saturating_sub(done) as f64
        }
    };
    (spent + next_cost + need > p.time_limit_s).then_some((leader.id, rungs.len() - 1))
}

/// Whether a new trial can still reach its first rung before the clock ends: `spent` plus the
/// first rung's epochs at the mean seconds per epoch of the trials this search has trained
/// (reused incumbents excluded: their seconds were not charged to this clock) must not pass
/// `time_limit`. With no trained epoch yet there is no estimate, and the trial starts. A trial
/// that cannot finish its first rung is stopped by the clock with nothing to rank, so its
/// time is better left unspent (or to [`finish_leader`], which is asked first).
pub fn can_reach_first_rung(p: &TuneParams, st: &SearchState, spent: f64) -> bool {
    let trained = st
        .trials
        .iter()
        .filter(|t| t.reused_from.is_none() && t.epochs_run > 0);
    let epochs: usize = trained.clone().map(|t| t.epochs_run).sum();
    if epochs == 0 {
        return true;
    }
    let per_epoch = trained.map(|t| t.seconds).sum::<f64>() / epochs as f64;
    spent + per_epoch * p.rungs()[0] as f64 <= p.time_limit_s
}

/// The winner: among trials that reached the highest rung any trial reached, and trials whose
/// training finished (stopped early by patience, as train-cnn's reused run of the base may
/// have: its best checkpoint is final, and it would not have changed with more epochs), the
/// best validation score at its last rung ([`Rung::score`]: macro F1 with more than two
/// classes, else accuracy; then the lower validation loss, then the lower id).
pub fn best_trial(st: &SearchState) -> Option<&Trial> {
    best_of(st.trials.iter())
}

/// [`best_trial`]'s rule over some of the trials.
fn best_of<'a>(trials: impl Iterator<Item = &'a Trial> + Clone) -> Option<&'a Trial> {
    let ok = trials.filter(|t| t.status != Status::Failed);
    let top = ok.clone().map(|t| t.rungs.len()).max()?;
    if top == 0 {
        return None;
    }
    let done = |t: &Trial| t.finished && t.status == Status::Completed && !t.rungs.is_empty();
    ok.filter(|t| t.rungs.len() == top || done(t))
        .min_by(|a, b| {
            let last = |t: &'a Trial| t.rungs.last().expect("at least one rung");
            let (ra, rb) = (last(a), last(b));
            rb.score()
                .total_cmp(&ra.score())
                .then(ra.val_loss.total_cmp(&rb.val_loss))
                .then(a.id.cmp(&b.id))
        })
}
