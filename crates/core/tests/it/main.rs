//! core's integration tests, one binary (one link instead of 5: a fresh build's
//! time goes largely to linking each test binary against the whole dependency tree).

mod extends;
mod ferplus;
mod pipeline_files;
mod shared_cache;
