use super::InvalidInput;
use chrono::{DateTime, Datelike, Utc};
use utoipa::openapi::{KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type};

/// When a schedule starts: an RFC 3339 date-time (as JSON Schema's `date-time` reads it) whose
/// year, as written, is 1970 to 9998. The year is checked as written because that is what the
/// OpenAPI document can state; 9998 keeps the instant a four-digit year in UTC too, which is
/// how the API writes it back (any offset moves it by less than a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct ScheduleStart(DateTime<Utc>);

impl ScheduleStart {
    pub const MIN_YEAR: i32 = 1970;
    pub const MAX_YEAR: i32 = 9998;
    /// The years `MIN_YEAR..=MAX_YEAR` as the document's pattern spells them.
    const YEAR_PATTERN: &'static str =
        "^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-";

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

impl TryFrom<String> for ScheduleStart {
    type Error = InvalidInput;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let refused = || {
            InvalidInput(format!(
                "starts_at must be an RFC 3339 date-time in the years {} to {}, got {value:?}",
                Self::MIN_YEAR,
                Self::MAX_YEAR
            ))
        };
        // chrono also reads a space for the `T`, which `date-time` does not allow.
        if value.as_bytes().get(10) == Some(&b' ') {
            return Err(refused());
        }
        let written = DateTime::parse_from_rfc3339(&value).map_err(|_| refused())?;
        if !(Self::MIN_YEAR..=Self::MAX_YEAR).contains(&written.year()) {
            return Err(refused());
        }
        Ok(ScheduleStart(written.with_timezone(&Utc)))
    }
}

impl utoipa::PartialSchema for ScheduleStart {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .pattern(Some(Self::YEAR_PATTERN))
            .description(Some(format!(
                "RFC 3339; the year as written is {} to {}.",
                Self::MIN_YEAR,
                Self::MAX_YEAR
            )))
            .into()
    }
}

impl utoipa::ToSchema for ScheduleStart {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScheduleStart, InvalidInput> {
        ScheduleStart::try_from(text.to_string())
    }

    #[test]
    fn the_year_is_bounded_as_written_not_in_utc() {
        let first = parse("1970-01-01T00:30:00+01:00").map(ScheduleStart::get);
        assert_eq!(first.map(|t| t.year()), Ok(1969));
        let last = parse("9998-12-31T23:59:59-23:59").map(ScheduleStart::get);
        assert_eq!(last.map(|t| t.year()), Ok(9999));
        for refused in [
            "1969-12-31T23:59:59-01:00",
            "9999-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
        ] {
            assert!(parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn only_rfc_3339_date_times_are_read() {
        assert!(parse("2030-05-01t19:00:00.5z").is_ok());
        for refused in [
            "2030-05-01 19:00:00Z",
            "2030-5-1T19:00:00Z",
            "2030-05-01T19:00:00",
            "2030-02-30T19:00:00Z",
            "tomorrow",
            "+12030-05-01T19:00:00Z",
        ] {
            assert!(parse(refused).is_err(), "{refused}");
        }
    }
}
