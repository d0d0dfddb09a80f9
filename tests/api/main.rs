//! Integration tests: real Postgres, real HTTP, the real application wiring.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_pages;
mod bad_input;
mod browser;
mod cancellations;
mod catalog;
mod command_line;
mod delivery;
mod delivery_helpers;
mod fresh_copy;
mod harness;
mod helpers;
mod holds;
mod mock_data_platform;
mod observability;
mod one_command;
mod openapi;
mod outbox_table;
mod pages;
mod payments;
mod points;
mod relay_loops;
mod relay_processes;
mod reservation_rules;
mod waker;
