use super::InvalidInput;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use std::fmt;
use utoipa::openapi::{KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type};

/// The id of a stored row: a positive 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityId(i64);

impl EntityId {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = i64::MAX;
    pub fn parse(field: &str, value: i64) -> Result<Self, InvalidInput> {
        if value < Self::MIN {
            return Err(InvalidInput(format!(
                "{field} must be a positive integer, got {value}"
            )));
        }
        Ok(EntityId(value))
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

/// As parsed from a path or a body, where the id's name is the caller's to give.
impl TryFrom<i64> for EntityId {
    type Error = InvalidInput;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse("id", value)
    }
}

/// Points added to a balance in one charge: 1 to 10,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeAmount(i64);

impl ChargeAmount {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = 10_000_000;
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for ChargeAmount {
    type Error = InvalidInput;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        in_range("amount", value, Self::MIN, Self::MAX).map(ChargeAmount)
    }
}

/// A seat's price in points: positive and small enough that sums cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(i64);

impl Price {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = 1_000_000_000;
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Price {
    type Error = InvalidInput;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        in_range("price", value, Self::MIN, Self::MAX).map(Price)
    }
}

/// Seats of one schedule: 1 to 1,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatCount(i32);

impl SeatCount {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = 1_000;
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for SeatCount {
    type Error = InvalidInput;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        let count = in_range("seat_count", value, Self::MIN, Self::MAX)?;
        // in_range bounds it to 1..=1000, which always fits.
        Ok(SeatCount(count as i32))
    }
}

fn in_range(field: &str, value: i64, min: i64, max: i64) -> Result<i64, InvalidInput> {
    if value < min || value > max {
        return Err(InvalidInput(format!(
            "{field} must be between {min} and {max}, got {value}"
        )));
    }
    Ok(value)
}

/// Reads a JSON integer the way JSON Schema's `integer` (and so the OpenAPI document) counts
/// one: by its value, however it is written, so `7.0` and `7e0` are 7 and `7.5` is refused. In
/// a path the segment must read as an i64. Then `T`'s own bounds apply.
fn deserialize_bounded<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64, Error = InvalidInput>,
{
    let value = deserializer.deserialize_i64(WholeNumber)?;
    T::try_from(value).map_err(de::Error::custom)
}

struct WholeNumber;

impl Visitor<'_> for WholeNumber {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
        Ok(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
        i64::try_from(value).map_err(|_| E::custom(format!("{value} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<i64, E> {
        // 2^63: every whole f64 in [-2^63, 2^63) is exactly an i64.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if value.fract() != 0.0 {
            return Err(E::invalid_type(Unexpected::Float(value), &self));
        }
        if !(-LIMIT..LIMIT).contains(&value) {
            return Err(E::custom(format!("{value} is out of range")));
        }
        Ok(value as i64)
    }
}

impl<'de> serde::Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_bounded(deserializer)
    }
}

impl<'de> serde::Deserialize<'de> for ChargeAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_bounded(deserializer)
    }
}

impl<'de> serde::Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_bounded(deserializer)
    }
}

impl<'de> serde::Deserialize<'de> for SeatCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_bounded(deserializer)
    }
}

/// The OpenAPI schema of a bounded integer. Each type below states the same constants its
/// parser checks, so a client generating input from the document never sends what the API
/// refuses, and never misses what it accepts.
fn bounded_integer(min: i64, max: i64, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(description))
        .into()
}

impl utoipa::PartialSchema for EntityId {
    fn schema() -> RefOr<Schema> {
        bounded_integer(Self::MIN, Self::MAX, "The id of a stored row.")
    }
}

impl utoipa::ToSchema for EntityId {}

impl utoipa::PartialSchema for ChargeAmount {
    fn schema() -> RefOr<Schema> {
        bounded_integer(Self::MIN, Self::MAX, "Points added to the balance.")
    }
}

impl utoipa::ToSchema for ChargeAmount {}

impl utoipa::PartialSchema for Price {
    fn schema() -> RefOr<Schema> {
        bounded_integer(Self::MIN, Self::MAX, "Points per seat.")
    }
}

impl utoipa::ToSchema for Price {}

impl utoipa::PartialSchema for SeatCount {
    fn schema() -> RefOr<Schema> {
        bounded_integer(
            Self::MIN,
            Self::MAX,
            "Seats of the schedule, numbered from 1.",
        )
    }
}

impl utoipa::ToSchema for SeatCount {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_amount_bounds_are_inclusive() {
        assert!(ChargeAmount::try_from(1).is_ok());
        assert!(ChargeAmount::try_from(10_000_000).is_ok());
        assert!(ChargeAmount::try_from(0).is_err());
        assert!(ChargeAmount::try_from(-5).is_err());
        assert!(ChargeAmount::try_from(10_000_001).is_err());
    }

    #[test]
    fn seat_count_and_price_refuse_out_of_range_values() {
        assert!(SeatCount::try_from(1000).is_ok());
        assert!(SeatCount::try_from(1001).is_err());
        assert!(SeatCount::try_from(0).is_err());
        assert!(Price::try_from(0).is_err());
        assert!(Price::try_from(i64::MAX).is_err());
    }

    #[test]
    fn ids_must_be_positive() {
        assert!(EntityId::parse("seat_id", 0).is_err());
        assert!(EntityId::parse("seat_id", -1).is_err());
        assert_eq!(EntityId::parse("seat_id", 7).map(EntityId::get), Ok(7));
    }

    #[test]
    fn json_integers_are_read_by_value_however_written() {
        let read = |json: &str| serde_json::from_str::<ChargeAmount>(json).map(ChargeAmount::get);
        assert_eq!(read("864").ok(), Some(864));
        assert_eq!(read("864.0").ok(), Some(864));
        assert_eq!(read("8.64e2").ok(), Some(864));
        for refused in ["864.5", "\"864\"", "0", "1e7.0", "1e400", "null"] {
            assert!(read(refused).is_err(), "{refused}");
        }
        let id = |json: &str| serde_json::from_str::<EntityId>(json).map(EntityId::get);
        assert_eq!(id("9223372036854775807").ok(), Some(i64::MAX));
        assert_eq!(
            id("9223372036854774784.0").ok(),
            Some(9_223_372_036_854_774_784)
        );
        for refused in [
            "9223372036854775808",
            "9223372036854775808.0",
            "99999999999999999999999",
        ] {
            assert!(id(refused).is_err(), "{refused}");
        }
    }
}
