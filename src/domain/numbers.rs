use super::InvalidInput;

/// The id of a stored row: a positive 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityId(i64);

impl EntityId {
    pub fn parse(field: &str, value: i64) -> Result<Self, InvalidInput> {
        if value < 1 {
            return Err(InvalidInput(format!("{field} must be a positive integer")));
        }
        Ok(EntityId(value))
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Points added to a balance in one charge: 1 to 10,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeAmount(i64);

impl ChargeAmount {
    pub const MAX: i64 = 10_000_000;
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for ChargeAmount {
    type Error = InvalidInput;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        in_range("amount", value, 1, Self::MAX).map(ChargeAmount)
    }
}

/// A seat's price in points: positive and small enough that sums cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(i64);

impl Price {
    pub const MAX: i64 = 1_000_000_000;
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Price {
    type Error = InvalidInput;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        in_range("price", value, 1, Self::MAX).map(Price)
    }
}

/// Seats of one schedule: 1 to 1,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatCount(i32);

impl SeatCount {
    pub const MAX: i64 = 1_000;
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for SeatCount {
    type Error = InvalidInput;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        let count = in_range("seat_count", value, 1, Self::MAX)?;
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
}
