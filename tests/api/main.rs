//! Integration tests: real Postgres, real HTTP, the real application wiring.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod catalog;
mod helpers;
mod holds;
mod payments;
mod points;
