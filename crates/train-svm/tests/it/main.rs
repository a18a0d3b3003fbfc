//! train-svm's integration tests, one binary (one link instead of 2: a fresh build's
//! time goes largely to linking each test binary against the whole dependency tree).

mod cli;
mod common;
mod seven;
