//! `fer-bench --only augment`: online augmentation's throughput.

use crate::{Row, best};

/// Online augmentation throughput: the typical chain (flip p=0.5, rotation ±15°, contrast
/// 0.8-1.2) over 20,480 48x48 images in batches of 64, on all threads and on one.
pub(crate) fn augment_rows(rows: &mut Vec<Row>, repeat: usize) {
    use fer_augment::{Augmenter, Op, Step};
    let aug = Augmenter {
        steps: vec![
            Step {
                op: Op::Hflip,
                p: 0.5,
            },
            Step {
                op: Op::Rotate { degrees: 15.0 },
                p: 1.0,
            },
            Step {
                op: Op::Contrast { min: 0.8, max: 1.2 },
                p: 1.0,
            },
        ],
        side: 48,
        range: (-2.0, 2.0),
    };
    let n = 20_480usize;
    let base: Vec<f32> = (0..n * 2304)
        .map(|i| ((i * 7919) % 997) as f32 / 250.0 - 2.0)
        .collect();
    let mut work = base.clone();
    let mut time_it = |name: String| {
        let (s, _) = best(repeat, || {
            work.copy_from_slice(&base);
            for (b, batch) in work.chunks_mut(64 * 2304).enumerate() {
                aug.apply_batch(batch, 1, b as u64);
            }
        });
        rows.push(Row {
            name,
            items: n as f64,
            unit: "images",
            seconds: s,
        });
    };
    let threads = rayon::current_num_threads();
    time_it(format!(
        "augment flip+rotate+contrast, batch 64, {threads} thr"
    ));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    one.install(|| time_it("augment flip+rotate+contrast, batch 64, 1 thr".into()));
}
