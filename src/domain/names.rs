use super::InvalidInput;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};

/// A user's display name: 1 to 100 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 100;
}

impl TryFrom<String> for UserName {
    type Error = InvalidInput;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        bounded_text("name", value, Self::MAX_CHARS).map(UserName)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A concert's title: 1 to 200 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct ConcertTitle(String);

impl ConcertTitle {
    pub const MAX_CHARS: usize = 200;
}

impl TryFrom<String> for ConcertTitle {
    type Error = InvalidInput;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        bounded_text("title", value, Self::MAX_CHARS).map(ConcertTitle)
    }
}

impl AsRef<str> for ConcertTitle {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn bounded_text(field: &str, value: String, max_chars: usize) -> Result<String, InvalidInput> {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        return Err(InvalidInput(format!("{field} must not be empty")));
    }
    if chars > max_chars {
        return Err(InvalidInput(format!(
            "{field} must be at most {max_chars} characters, got {chars}"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidInput(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value)
}

/// What `char::is_control` refuses: Unicode's Cc.
const CONTROL: &[(char, char)] = &[('\u{0}', '\u{1f}'), ('\u{7f}', '\u{9f}')];
/// What `str::trim` removes: Unicode's White_Space.
const WHITESPACE: &[(char, char)] = &[
    ('\u{9}', '\u{d}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// `bounded_text`'s rule for the OpenAPI document: no control character anywhere, and at
/// least one character that is neither control nor whitespace. Spelled from the same ranges
/// the tests check against `char::is_control` and `char::is_whitespace`.
fn bounded_text_schema(max_chars: usize, description: &str) -> RefOr<Schema> {
    let class = |ranges: &[&[(char, char)]]| {
        let mut class = String::from("[^");
        for &(first, last) in ranges.iter().copied().flatten() {
            class.push_str(&regex_char(first));
            if last != first {
                class.push('-');
                class.push_str(&regex_char(last));
            }
        }
        class.push(']');
        class
    };
    let any = class(&[CONTROL]);
    let visible = class(&[CONTROL, WHITESPACE]);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(format!("^{any}*{visible}{any}*$")))
        .description(Some(description))
        .into()
}

/// A character as a regex escape both ECMA-262 and Python read the same way.
fn regex_char(c: char) -> String {
    match u32::from(c) {
        code @ 0..=0xff => format!("\\x{code:02x}"),
        code => format!("\\u{code:04x}"),
    }
}

impl utoipa::PartialSchema for UserName {
    fn schema() -> RefOr<Schema> {
        bounded_text_schema(
            Self::MAX_CHARS,
            "A display name: not only whitespace, no control characters.",
        )
    }
}

impl utoipa::ToSchema for UserName {}

impl utoipa::PartialSchema for ConcertTitle {
    fn schema() -> RefOr<Schema> {
        bounded_text_schema(
            Self::MAX_CHARS,
            "A concert's title: not only whitespace, no control characters.",
        )
    }
}

impl utoipa::ToSchema for ConcertTitle {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_of_100_multibyte_characters_is_accepted() {
        assert!(UserName::try_from("가".repeat(100)).is_ok());
    }

    #[test]
    fn empty_blank_long_and_control_names_are_refused() {
        for bad in ["", "   ", "a\nb"] {
            assert!(UserName::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
        assert!(UserName::try_from("a".repeat(101)).is_err());
    }

    #[test]
    fn the_schema_ranges_are_exactly_control_and_whitespace() {
        let within = |ranges: &[(char, char)], c: char| {
            ranges
                .iter()
                .any(|&(first, last)| (first..=last).contains(&c))
        };
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(within(CONTROL, c), c.is_control(), "{c:?}");
            assert_eq!(within(WHITESPACE, c), c.is_whitespace(), "{c:?}");
        }
    }

    #[test]
    fn the_schema_spells_the_rule_as_a_pattern() {
        let schema = serde_json::to_value(<UserName as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["maxLength"], 100);
        assert_eq!(
            schema["pattern"],
            "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x1f\\x7f-\\x9f\\x09-\\x0d\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028-\\u2029\\u202f\\u205f\\u3000][^\\x00-\\x1f\\x7f-\\x9f]*$"
        );
    }
}
