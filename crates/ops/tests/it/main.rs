//! ops's integration tests, one binary (one link instead of 2: a fresh build's
//! time goes largely to linking each test binary against the whole dependency tree).

mod common;
mod equal_to_burn;
mod isa;
mod winograd;
