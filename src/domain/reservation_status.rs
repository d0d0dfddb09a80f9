use std::fmt;
use std::str::FromStr;

/// The one place reservation states are spelled; the `reservations.status` column stores
/// exactly these strings (and a CHECK constraint allows no others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Held,
    Confirmed,
    Expired,
    Cancelled,
}

impl ReservationStatus {
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
        use ReservationStatus::*;
        for status in [Held, Confirmed, Expired, Cancelled] {
            assert_eq!(
                status.as_str().parse::<ReservationStatus>().ok(),
                Some(status)
            );
        }
    }
}
