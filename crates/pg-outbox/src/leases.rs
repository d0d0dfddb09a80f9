//! Who is delivering right now: each relay's live leases (`lease_owner`, the relay's
//! `host:pid:random` name), shown by `outbox-relay status` and `GET /admin/outbox` next to the
//! counts, so an operator can tell which relay holds a stuck batch.

use crate::admin::{outbox_status, OutboxStatus};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use serde::Serialize;
use std::fmt;

/// The deliveries of one destination that one relay holds a live lease on.
#[derive(Debug, Clone, Serialize, QueryableByName)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseHolder {
    #[diesel(sql_type = Text)]
    pub destination: String,
    /// The relay holding the lease.
    #[diesel(sql_type = Text)]
    pub lease_owner: String,
    /// Deliveries it has in flight.
    #[diesel(sql_type = BigInt)]
    pub in_flight: i64,
    /// When the last of its leases runs out, unless it acknowledges or releases them first.
    #[diesel(sql_type = Timestamptz)]
    pub lease_expires_at: DateTime<Utc>,
}

/// What operators see: the counts and dead deliveries, and who has what in flight.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxReport {
    #[serde(flatten)]
    pub status: OutboxStatus,
    /// Live leases by destination and relay (the `in_flight` counts, by who holds them).
    pub in_flight_by: Vec<LeaseHolder>,
}

/// The outbox's state and its live leases.
pub fn outbox_report(conn: &mut PgConnection) -> QueryResult<OutboxReport> {
    Ok(OutboxReport {
        status: outbox_status(conn)?,
        in_flight_by: lease_holders(conn)?,
    })
}

/// Live leases, counted the way `in_flight` is.
fn lease_holders(conn: &mut PgConnection) -> QueryResult<Vec<LeaseHolder>> {
    diesel::sql_query(
        "SELECT destination, lease_owner, count(*) AS in_flight, \
                max(lease_expires_at) AS lease_expires_at \
         FROM outbox_deliveries \
         WHERE status = 'pending' AND lease_expires_at > now() AND lease_owner IS NOT NULL \
         GROUP BY destination, lease_owner \
         ORDER BY destination, lease_owner",
    )
    .load(conn)
}

impl fmt::Display for OutboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if self.in_flight_by.is_empty() {
            return Ok(());
        }
        writeln!(f, "\nin flight:")?;
        for lease in &self.in_flight_by {
            writeln!(
                f,
                "  {} in flight to {} by {} (lease until {})",
                lease.in_flight,
                lease.destination,
                lease.lease_owner,
                lease
                    .lease_expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )?;
        }
        Ok(())
    }
}
