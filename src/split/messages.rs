//! The messages the split's services send each other, and the exact JSON each carries. Each is
//! written to the sender's outbox in the same transaction as the change it asks for or reports,
//! keyed by its reservation (so a reservation's messages arrive in order), and recorded in the
//! receiver's inbox in the same transaction as its effect (so a second delivery changes nothing).
//!
//! reservation-svc -> payment-svc: [`PAYMENT_REQUESTED`], [`REFUND_REQUESTED`] (commands);
//! payment-svc -> reservation-svc: [`PAYMENT_COMPLETED`], [`PAYMENT_DECLINED`],
//! [`PAYMENT_REFUNDED`] (replies).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every saga message is about one reservation: its id is the aggregate.
pub const AGGREGATE: &str = "reservation";

pub const PAYMENT_REQUESTED: &str = "payment.requested";
pub const REFUND_REQUESTED: &str = "payment.refund_requested";
pub const PAYMENT_COMPLETED: &str = "payment.completed";
pub const PAYMENT_DECLINED: &str = "payment.declined";
pub const PAYMENT_REFUNDED: &str = "payment.refunded";

/// The commands payment-svc takes.
pub const COMMANDS: [&str; 2] = [PAYMENT_REQUESTED, REFUND_REQUESTED];
/// The replies reservation-svc takes.
pub const REPLIES: [&str; 3] = [PAYMENT_COMPLETED, PAYMENT_DECLINED, PAYMENT_REFUNDED];

/// A message as it travels: its id (the inbox key) and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: Uuid,
    #[serde(flatten)]
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type")]
pub enum Message {
    /// Debit `amount` for the reservation, once: `payment_key` (derived from the reservation)
    /// is unique among payments, so a redelivered or replayed command never debits twice.
    #[serde(rename = "payment.requested")]
    PaymentRequested {
        reservation_id: i64,
        user_id: i64,
        amount: i64,
        payment_key: String,
    },
    /// Give back whatever the reservation's payment took (nothing if it took nothing, and then
    /// a payment requested later for it is declined).
    #[serde(rename = "payment.refund_requested")]
    RefundRequested { reservation_id: i64 },
    #[serde(rename = "payment.completed")]
    PaymentCompleted {
        reservation_id: i64,
        payment_id: i64,
        amount: i64,
        balance_after: i64,
    },
    #[serde(rename = "payment.declined")]
    PaymentDeclined {
        reservation_id: i64,
        /// `insufficient_points`, or `voided` (refunded before it was paid).
        reason: String,
        /// The user's balance when it was declined.
        balance: i64,
    },
    /// `amount` is 0 when nothing had been paid.
    #[serde(rename = "payment.refunded")]
    PaymentRefunded {
        reservation_id: i64,
        amount: i64,
        balance_after: Option<i64>,
    },
}

impl Message {
    pub fn event_type(&self) -> &'static str {
        match self {
            Message::PaymentRequested { .. } => PAYMENT_REQUESTED,
            Message::RefundRequested { .. } => REFUND_REQUESTED,
            Message::PaymentCompleted { .. } => PAYMENT_COMPLETED,
            Message::PaymentDeclined { .. } => PAYMENT_DECLINED,
            Message::PaymentRefunded { .. } => PAYMENT_REFUNDED,
        }
    }

    pub fn reservation_id(&self) -> i64 {
        match self {
            Message::PaymentRequested { reservation_id, .. }
            | Message::RefundRequested { reservation_id }
            | Message::PaymentCompleted { reservation_id, .. }
            | Message::PaymentDeclined { reservation_id, .. }
            | Message::PaymentRefunded { reservation_id, .. } => *reservation_id,
        }
    }

    /// This message as an outbox event with a fresh id, to write in the sender's transaction.
    pub fn into_event(self, trace_context: Option<String>) -> pg_outbox::NewEvent {
        let event_id = Uuid::new_v4();
        let (event_type, aggregate_id) = (self.event_type(), self.reservation_id());
        let envelope = Envelope {
            event_id,
            message: self,
        };
        pg_outbox::NewEvent {
            event_id,
            aggregate_type: AGGREGATE,
            aggregate_id,
            event_type,
            payload: serde_json::to_value(envelope).unwrap_or_default(),
            trace_context,
        }
    }
}

/// The key of the one payment a reservation can have, whoever asks for it how often.
pub fn payment_key(reservation_id: i64) -> String {
    format!("reservation-{reservation_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_travels_as_flat_json_named_by_its_event_type() {
        let event = Message::PaymentRequested {
            reservation_id: 7,
            user_id: 3,
            amount: 100,
            payment_key: payment_key(7),
        }
        .into_event(None);
        assert_eq!(event.event_type, PAYMENT_REQUESTED);
        assert_eq!(event.aggregate_id, 7);
        assert_eq!(
            event.payload,
            serde_json::json!({"event_id": event.event_id, "event_type": "payment.requested",
                "reservation_id": 7, "user_id": 3, "amount": 100, "payment_key": "reservation-7"})
        );
        let back: Envelope = serde_json::from_value(event.payload).unwrap();
        assert_eq!(back.event_id, event.event_id);
        assert_eq!(back.message.reservation_id(), 7);
    }
}
