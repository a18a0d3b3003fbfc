//! A batch: images scored per face to stdout, or `--video`, one row per second of the source.

use super::BatchArgs;
use fer_predict::output::{RowWriter, SecondWriter};
use fer_predict::video::{Event, PerSecond, Source};
use std::io::Write;

pub(crate) fn batch(a: &BatchArgs) -> anyhow::Result<()> {
    if let Some(spec) = &a.video {
        return video(a, spec);
    }
    if a.inputs.is_empty() {
        anyhow::bail!("no inputs: give image files, folders or `-` (see --help)");
    }
    let p = a.model.predictor()?;
    let items = fer_predict::inputs::expand(&a.inputs, &mut std::io::stdin().lock());
    let pb = fer_core::cli::progress(items.len() as u64, "predict", a.model.quiet);
    let stdout = std::io::stdout().lock();
    let mut w = RowWriter::with_classes(
        a.format,
        std::io::BufWriter::new(stdout),
        p.threshold,
        p.classes.as_ref(),
    )?;
    let chunk = 512;
    let s = p.run_files(&items, chunk, &pb, &mut |f, o| w.write(f, o))?;
    w.flush()?;
    pb.finish_and_clear();
    if !a.model.quiet {
        eprintln!(
            "{} files, {} faces, {} without a face, {} unreadable, {:.2} s ({:.0} files/s)",
            s.files,
            s.faces,
            s.no_face,
            s.errors,
            s.seconds,
            s.files as f64 / s.seconds.max(1e-9)
        );
    }
    std::io::stderr().flush().ok();
    Ok(())
}

/// `--video`: one row per second of the source on stdout.
fn video(a: &BatchArgs, spec: &str) -> anyhow::Result<()> {
    let source = Source::parse(spec)?;
    let spec = source.shown.as_str();
    let vo = a.vid.options(5, false)?;
    let p = a.model.predictor()?;
    let quiet = a.model.quiet;
    let pb = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} frames ({per_sec})")
                .expect("valid template"),
        );
        pb.set_message(format!("video {spec}:"));
        pb
    };
    let mut w = SecondWriter::new(a.format, std::io::BufWriter::new(std::io::stdout().lock()));
    let mut per = PerSecond::new(vo.fps, p.threshold);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let group = 2 * rayon::current_num_threads().max(1);
    // A log line every minute of video where stderr is not a terminal (the bar's stand-in in
    // a log file).
    let log_every = (60.0 * vo.fps).round().max(1.0) as u64;
    let r = fer_predict::video::run(
        &p,
        &source,
        &vo,
        group,
        &stop,
        &mut |k, o| {
            pb.inc(1);
            if (k + 1) % log_every == 0 {
                fer_core::cli::log_line(
                    "video",
                    quiet,
                    &format!(
                        "{spec}: {} frames, {:.0} s of video",
                        k + 1,
                        (k + 1) as f64 / vo.fps
                    ),
                );
            }
            match per.push(k, o) {
                Some(s) => w.write(&s),
                None => Ok(()),
            }
        },
        &mut |ev| match ev {
            Event::Opened if !quiet => pb.println(format!(
                "reading {spec} through ffmpeg: {} frames/s at {}x{}",
                vo.fps, vo.width, vo.height
            )),
            // Warnings show even with --quiet.
            Event::Failed(e, Some(wait)) => {
                let msg = format!(
                    "warning: {e}; opening it again in {:.0} s",
                    wait.as_secs_f64()
                );
                if pb.is_hidden() {
                    eprintln!("{msg}");
                } else {
                    pb.println(msg);
                }
            }
            _ => {}
        },
    );
    pb.finish_and_clear();
    // The last second is written whatever stopped the source: no scored frame is lost.
    if let Some(s) = per.finish() {
        w.write(&s)?;
    }
    let sum = r?;
    if !quiet {
        eprintln!(
            "{} frames ({:.1} s of video), {} faces, reopened {} times, {:.1} s ({:.1} frames/s)",
            sum.frames,
            sum.frames as f64 / vo.fps,
            sum.faces,
            sum.reopened,
            sum.wall_seconds,
            sum.frames as f64 / sum.wall_seconds.max(1e-9)
        );
    }
    Ok(())
}
