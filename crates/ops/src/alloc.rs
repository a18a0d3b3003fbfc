//! The allocator setting the CNN binaries share (they declare mimalloc as their global
//! allocator and call [`keep_freed_memory`] first thing in `main`).
//!
//! A training step frees and re-allocates the same activation buffers every time. glibc's malloc
//! hands big ones back to the OS and page-faults them in again (12% of a fer-small step,
//! measured); mimalloc keeps them, but by default still purges freed memory after 10 ms, which
//! cost seed-base 15-25% of its throughput (571-576 against 674-748 images/s without purging).

/// `mi_option_purge_delay` in mimalloc.h (v2, what libmimalloc-sys builds by default): its
/// Rust bindings name the options around it (14 and 16) but not this one.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tell mimalloc never to return freed memory to the OS while the process runs (the process
/// keeps its peak; `MIMALLOC_PURGE_DELAY` in the environment still wins if set). Harmless when
/// mimalloc is not the global allocator.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc's options are plain atomics.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Return the calling thread's freed memory to the OS now (mimalloc's `mi_collect(true)`):
/// a service calls it after a large request, so that a burst's memory does not stay with the
/// worker thread that served it. Harmless when mimalloc is not the global allocator.
pub fn give_back_freed_memory() {
    // SAFETY: mi_collect only walks the calling thread's heap and mimalloc's segment caches.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
