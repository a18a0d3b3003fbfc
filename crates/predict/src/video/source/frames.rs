//! [`Frames`]: one ffmpeg child on a source, its stdout read into whole gray frames and the
//! last of its stderr kept for an error message.

use super::{Source, VideoError, VideoOptions, ffmpeg_args};
use crate::video::{OPEN_GRACE, QUEUED_FRAMES};
use image::GrayImage;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The last bytes of ffmpeg's stderr kept for an error message.
const STDERR_KEEP: usize = 2048;

/// One piece of what ffmpeg's stdout carried.
enum Piece {
    Frame(Vec<u8>),
    /// The pipe ended inside a frame after `got` bytes.
    Cut(usize),
}

/// Frames of one source, one ffmpeg child. Dropping it stops ffmpeg.
pub struct Frames {
    source: Source,
    o: VideoOptions,
    child: Child,
    rx: Receiver<Piece>,
    stderr: Arc<Mutex<String>>,
    /// Frames handed out so far.
    pub read: u64,
}

impl Frames {
    /// Start ffmpeg on `source`.
    pub fn open(source: &Source, o: &VideoOptions) -> Result<Frames, VideoError> {
        o.check().map_err(|message| VideoError::Source {
            source_spec: source.shown.clone(),
            message,
        })?;
        let mut child = Command::new(&o.ffmpeg)
            .args(ffmpeg_args(source, o))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| VideoError::NoFfmpeg {
                ffmpeg: o.ffmpeg.display().to_string(),
                source_spec: source.shown.clone(),
                source: e,
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let keep = stderr.clone();
        std::thread::spawn(move || keep_tail(stderr_pipe, &keep));
        let (tx, rx) = sync_channel(QUEUED_FRAMES);
        let n = o.frame_bytes();
        std::thread::spawn(move || pump(stdout, n, &tx));
        Ok(Frames {
            source: source.clone(),
            o: o.clone(),
            child,
            rx,
            stderr,
            read: 0,
        })
    }

    /// The next frame; `Ok(None)` when the source ended cleanly.
    pub fn next_frame(&mut self) -> Result<Option<GrayImage>, VideoError> {
        // ffmpeg reads up to 5 s of a stream to learn its format before the first frame.
        let wait = if self.read == 0 {
            self.o.stall + OPEN_GRACE
        } else {
            self.o.stall
        };
        match self.rx.recv_timeout(wait) {
            Ok(Piece::Frame(bytes)) => {
                self.read += 1;
                let img = GrayImage::from_raw(self.o.width, self.o.height, bytes)
                    .expect("frame_bytes = width x height");
                Ok(Some(img))
            }
            Ok(Piece::Cut(got)) => {
                self.finish()?;
                Err(VideoError::Truncated {
                    source_spec: self.source.shown.clone(),
                    got,
                    want: self.o.frame_bytes(),
                })
            }
            Err(RecvTimeoutError::Timeout) => Err(VideoError::Stalled {
                source_spec: self.source.shown.clone(),
                seconds: wait.as_secs_f64(),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                self.finish()?;
                if self.read == 0 {
                    return Err(VideoError::Ffmpeg {
                        source_spec: self.source.shown.clone(),
                        status: "exit status 0".into(),
                        stderr: self.stderr_tail_or("no video frame in the source"),
                    });
                }
                Ok(None)
            }
        }
    }

    /// ffmpeg has closed its stdout: wait for it (at most the stall time) and turn a failure
    /// into an error with its message.
    fn finish(&mut self) -> Result<(), VideoError> {
        let deadline = std::time::Instant::now() + self.o.stall;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break None,
            }
        };
        match status {
            Some(s) if s.success() => Ok(()),
            other => {
                // Let the stderr thread take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                Err(VideoError::Ffmpeg {
                    source_spec: self.source.shown.clone(),
                    status: other.map_or("did not exit".into(), |s| s.to_string()),
                    stderr: self.stderr_tail_or("(no message)"),
                })
            }
        }
    }

    fn stderr_tail_or(&self, none: &str) -> String {
        let s = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        // ffmpeg's messages quote the URL: the shown form replaces it.
        let t = s.trim().replace(&self.source.spec, &self.source.shown);
        if t.is_empty() {
            none.to_string()
        } else {
            t.lines().collect::<Vec<_>>().join("; ")
        }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read whole frames of `n` bytes from ffmpeg's stdout into the channel until it ends.
fn pump(mut r: impl Read, n: usize, tx: &SyncSender<Piece>) {
    loop {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let piece = match got {
            0 => return,
            g if g < n => Piece::Cut(g),
            _ => Piece::Frame(buf),
        };
        let cut = matches!(piece, Piece::Cut(_));
        if tx.send(piece).is_err() || cut {
            return;
        }
    }
}

/// Keep the last [`STDERR_KEEP`] bytes ffmpeg writes to stderr.
fn keep_tail(mut r: impl Read, into: &Mutex<String>) {
    let mut buf = [0u8; 1024];
    while let Ok(k) = r.read(&mut buf) {
        if k == 0 {
            break;
        }
        let mut s = into.lock().unwrap_or_else(|e| e.into_inner());
        s.push_str(&String::from_utf8_lossy(&buf[..k]));
        if s.len() > STDERR_KEEP {
            let mut cut = s.len() - STDERR_KEEP;
            while !s.is_char_boundary(cut) {
                cut += 1;
            }
            s.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pump_hands_out_whole_frames_and_tells_a_cut() {
        let (tx, rx) = sync_channel(8);
        pump(&[1u8; 10][..], 4, &tx);
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Piece::Frame(b) if b.len() == 4));
        assert!(matches!(&got[1], Piece::Frame(_)));
        assert!(matches!(got[2], Piece::Cut(2)));
        let (tx, rx) = sync_channel(8);
        pump(&[0u8; 8][..], 4, &tx);
        assert_eq!(rx.try_iter().count(), 2);
    }
}
