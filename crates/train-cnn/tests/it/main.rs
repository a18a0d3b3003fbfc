//! train-cnn's integration tests, one binary (one link instead of 2: a fresh build's
//! time goes largely to linking each test binary against the whole dependency tree).

mod checkpoints;
mod train_cnn;
