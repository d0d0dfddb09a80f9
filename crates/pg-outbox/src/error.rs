//! Errors as the relay logs them.

use std::error::Error;

/// An error and every cause below it on one line (`a: b: c`), for the one log line that
/// reports it.
pub fn cause_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
