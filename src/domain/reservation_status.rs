use std::fmt;
use std::str::FromStr;

/// The one place Rust spells reservation states; the `reservations.status` column stores
/// exactly these strings. SQL spells them only in the migrations: the column's CHECK and the
/// rule functions of `reservation_rules` (`reservation_is_live`, `reservation_hold_active`,
/// ...), which every query uses; statements that write a state bind it from here.
/// `tests/api/reservation_rules.rs` holds the two sides to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Held,
    Confirmed,
    Expired,
    Cancelled,
}

impl ReservationStatus {
    pub const ALL: [ReservationStatus; 4] = [
        ReservationStatus::Held,
        ReservationStatus::Confirmed,
        ReservationStatus::Expired,
        ReservationStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Confirmed => "confirmed",
            ReservationStatus::Expired => "expired",
            ReservationStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown reservation status {0:?}")]
pub struct UnknownStatus(String);

/// Reads the `reservations.status` column straight into the enum; a value outside it (which
/// the column's CHECK forbids) is a deserialization error, never a silent default.
impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for ReservationStatus {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = <String as diesel::deserialize::FromSql<
            diesel::sql_types::Text,
            diesel::pg::Pg,
        >>::from_sql(value)?;
        Ok(text.parse()?)
    }
}

impl FromStr for ReservationStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "held" => Ok(ReservationStatus::Held),
            "confirmed" => Ok(ReservationStatus::Confirmed),
            "expired" => Ok(ReservationStatus::Expired),
            "cancelled" => Ok(ReservationStatus::Cancelled),
            other => Err(UnknownStatus(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_column_value() {
        for status in ReservationStatus::ALL {
            assert_eq!(
                status.as_str().parse::<ReservationStatus>().ok(),
                Some(status)
            );
        }
    }
}
