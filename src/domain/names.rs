use super::InvalidInput;

/// A user's display name: 1 to 100 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl TryFrom<String> for UserName {
    type Error = InvalidInput;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        bounded_text("name", value, 100).map(UserName)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A concert's title: 1 to 200 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcertTitle(String);

impl TryFrom<String> for ConcertTitle {
    type Error = InvalidInput;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        bounded_text("title", value, 200).map(ConcertTitle)
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
}
