//! concert-outbox: seat reservations paid with points, whose side effects leave through a
//! transactional outbox and a relay, so the data platform can never slow down or fail a payment.

pub mod app_state;
pub mod auth;
pub mod auth_cache;
pub mod blocking;
pub mod concerts;
pub mod config;
pub mod db;
pub mod domain;
pub mod embedded_postgres;
pub mod error;
pub mod metrics;
pub mod outbox;
pub mod pages;
pub mod payments;
pub mod points;
pub mod queue;
pub mod reservations;
pub mod routes;
pub mod split;
pub mod startup;
pub mod trace;
pub mod users;
