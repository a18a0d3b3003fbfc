use fer_core::tensors::TensorSet;
use fer_train_cnn::settings::TrainSettings;
fn main() {
    let device = burn::tensor::Device::flex();
    let data = |n: usize| TensorSet {
        n,
        height: 48,
        width: 48,
        x: (0..n * 2304)
            .map(|i| ((i * 7919) % 997) as f32 / 250.0 - 2.0)
            .collect(),
        y: (0..n).map(|i| (i % 2) as u8).collect(),
    };
    let aug = fer_augment::Augmenter {
        steps: vec![],
        side: 48,
        range: (-2.0, 2.0),
    };
    let val = data(64);
    let w: usize = std::env::var("W").map(|v| v.parse().unwrap()).unwrap_or(1);
    let arch = std::env::var("ARCH").unwrap_or("fer-small".into());
    for bs in std::env::args()
        .skip(1)
        .map(|s| s.parse::<usize>().unwrap())
    {
        let s = TrainSettings {
            arch: arch.clone(),
            workers: w,
            name: "x".into(),
            epochs: 1,
            warmup_epochs: 0,
            patience: 0,
            augment: false,
            batch_size: bs,
            widths: vec![32, 64, 128, 192],
            ..TrainSettings::default()
        };
        let train = data(1536);
        let ckpt = tempfile::tempdir().unwrap();
        let t = fer_train_cnn::train::train(
            &s,
            &train,
            &val,
            &aug,
            &device,
            ckpt.path(),
            &|_, _, _| {},
        )
        .unwrap();
        println!(
            "{arch} workers {w} batch {bs}: {:.1} img/s",
            1536.0 / t.state.epochs[0].seconds
        );
    }
}
