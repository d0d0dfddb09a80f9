//! The operator dashboard's session: a cookie signed with the admin token, and the CSRF
//! tokens its forms carry. Nothing is stored on the server, so any API replica accepts a
//! session another issued, and changing `ADMIN_TOKEN` ends every session at once.
//!
//! Cookie value: `<expires, unix seconds>.<nonce>.<HMAC-SHA256(token, "session" expires nonce)>`.
//! A form's CSRF token is `HMAC-SHA256(token, "csrf" nonce)`: a page of another origin can
//! make the browser send the cookie (SameSite=Strict already stops that in current browsers)
//! but cannot read the token to put in the form.
//!
//! The login form, shown to anyone, carries no MAC of the admin token (a nonce and its MAC
//! would let a visitor test guesses at the token offline): its CSRF check is a random value
//! sent both as a cookie and in the form, which another origin can neither read nor set.

use crate::config::Secret;
use actix_web::cookie::{time, Cookie, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SESSION_COOKIE: &str = "concert_admin";
/// Carries the login form's nonce, so the login form has a CSRF token too.
pub const LOGIN_COOKIE: &str = "concert_admin_login";
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Both cookies are sent only to the dashboard's own paths.
const COOKIE_PATH: &str = "/admin";

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    nonce: String,
}

impl Session {
    /// The token every form of this session must send back.
    pub fn csrf_token(&self, admin_token: &Secret) -> String {
        sign(admin_token, &["csrf", &self.nonce])
    }

    pub fn accepts_csrf(&self, admin_token: &Secret, given: &str) -> bool {
        verify(admin_token, &["csrf", &self.nonce], given)
    }
}

/// A new session's cookie (Secure, HttpOnly, SameSite=Strict, for `LIFETIME`).
pub fn open(admin_token: &Secret) -> Cookie<'static> {
    let expires = unix_now() + LIFETIME.as_secs();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mac = sign(admin_token, &["session", &expires.to_string(), &nonce]);
    cookie(SESSION_COOKIE, format!("{expires}.{nonce}.{mac}"), LIFETIME)
}

/// The session a cookie value proves, if its signature holds and it has not expired.
pub fn verify_cookie(admin_token: &Secret, value: &str) -> Option<Session> {
    let mut parts = value.splitn(3, '.');
    let (expires, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
    let still_valid = expires.parse::<u64>().ok()? > unix_now();
    let genuine = verify(admin_token, &["session", expires, nonce], mac);
    (still_valid && genuine).then(|| Session {
        nonce: nonce.to_owned(),
    })
}

/// A cookie that makes the browser forget `name`.
pub fn expired(name: &'static str) -> Cookie<'static> {
    cookie(name, String::new(), Duration::ZERO)
}

/// The login form's nonce cookie, good for a few minutes.
pub fn login_cookie(nonce: &str) -> Cookie<'static> {
    cookie(LOGIN_COOKIE, nonce.to_owned(), Duration::from_secs(15 * 60))
}

pub fn new_login_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether the login form's field matches its cookie (compared in constant time).
pub fn accepts_login_csrf(cookie_nonce: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    !cookie_nonce.is_empty() && bool::from(cookie_nonce.as_bytes().ct_eq(given.as_bytes()))
}

fn cookie(name: &'static str, value: String, max_age: Duration) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(COOKIE_PATH)
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(max_age.as_secs() as i64))
        .finish()
}

fn mac(admin_token: &Secret, parts: &[&str]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(admin_token.expose().as_bytes()).ok()?;
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") sign differently.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    Some(mac)
}

fn sign(admin_token: &Secret, parts: &[&str]) -> String {
    mac(admin_token, parts)
        .map(|mac| hex(&mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Constant-time, through the MAC's own comparison.
fn verify(admin_token: &Secret, parts: &[&str], given: &str) -> bool {
    let (Some(mac), Some(given)) = (mac(admin_token, parts), unhex(given)) else {
        return false;
    };
    mac.verify_slice(&given).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Secret {
        Secret::new(text.to_owned())
    }

    #[test]
    fn a_session_cookie_verifies_with_its_token_only() {
        let cookie = open(&token("admin-1"));
        let session = verify_cookie(&token("admin-1"), cookie.value()).expect("valid");
        assert!(verify_cookie(&token("admin-2"), cookie.value()).is_none());
        let csrf = session.csrf_token(&token("admin-1"));
        assert!(session.accepts_csrf(&token("admin-1"), &csrf));
        assert!(!session.accepts_csrf(&token("admin-2"), &csrf));
        assert!(!session.accepts_csrf(&token("admin-1"), "00"));
    }

    #[test]
    fn a_tampered_or_expired_cookie_is_refused() {
        let admin = token("admin-1");
        let value = open(&admin).value().to_owned();
        let (expires, rest) = value.split_once('.').unwrap();
        let later = expires.parse::<u64>().unwrap() + 1;
        assert!(verify_cookie(&admin, &format!("{later}.{rest}")).is_none());
        let nonce = "n";
        let mac = sign(&admin, &["session", "1", nonce]);
        assert!(
            verify_cookie(&admin, &format!("1.{nonce}.{mac}")).is_none(),
            "expired in 1970"
        );
        assert!(verify_cookie(&admin, "garbage").is_none());
    }

    #[test]
    fn the_login_form_check_is_the_cookie_sent_back_and_reveals_nothing_of_the_token() {
        let nonce = new_login_nonce();
        assert!(accepts_login_csrf(&nonce, &nonce));
        assert!(!accepts_login_csrf(&nonce, &new_login_nonce()));
        assert!(!accepts_login_csrf("", ""));
        assert!(
            !login_cookie(&nonce).value().contains('.'),
            "a bare random value, no MAC"
        );
    }

    #[test]
    fn the_cookie_is_secure_http_only_strict_and_scoped_to_the_dashboard() {
        let cookie = open(&token("t"));
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));
        assert_eq!(cookie.path(), Some("/admin"));
    }
}
