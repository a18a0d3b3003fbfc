//! predict's integration tests, one binary (one link instead of 6: a fresh build's
//! time goes largely to linking each test binary against the whole dependency tree).

mod calibration;
mod classes;
mod common;
mod limits;
mod predict;
mod serve;
mod threshold;
mod video;
