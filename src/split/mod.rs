//! The split: the same product as reservation-svc and payment-svc, each with its own database,
//! talking through their outboxes and inboxes (`bus`), with reservation-svc orchestrating each
//! payment as a saga. The monolith (`concert-api`, one transaction) stays the default; this is
//! what a team grows into, side by side with it. `docs/transactions.md` designs it and says
//! which module implements each box.

pub mod bus;
pub mod messages;
pub mod payment;
pub mod reservation;
pub mod runtime;
