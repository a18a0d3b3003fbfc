//! Per-thread working buffers the kernels reuse from pass to pass ([`Scratch`]).

use std::ops::{Deref, DerefMut};

thread_local! {
    /// Buffers left from earlier passes on this thread (see [`Scratch`]).
    static SCRATCH: std::cell::Cell<Vec<Vec<f32>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `len` floats whose contents are left from an earlier pass on this thread, for the kernels'
/// working buffers (im2col's columns, Winograd's tiles, GEMM products), which write every
/// element they later read: allocating these afresh each pass (zeroed, and page-faulted in
/// when large) cost about a tenth of a training step. Derefs to exactly `len` floats; given
/// back to the thread's pool when dropped.
pub(crate) struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    pub(crate) fn new(len: usize) -> Scratch {
        let mut buf = SCRATCH.with(|c| {
            let mut pool = c.take();
            let v = pool.pop();
            c.set(pool);
            v.unwrap_or_default()
        });
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Scratch { buf, len }
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.buf);
        SCRATCH.with(|c| {
            let mut pool = c.take();
            // A few per thread at most (two in use at once); a nested use may add one.
            if pool.len() < 4 {
                pool.push(v);
            }
            c.set(pool);
        });
    }
}
