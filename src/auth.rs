//! Request authentication: `Authorization: Bearer <token>` for users, the `ADMIN_TOKEN` for
//! admin routes, and the split's `INTERNAL_TOKEN` for the routes its services call on each
//! other. A missing or unknown token is always 401 `unauthorized`.

use crate::app_state::AppState;
use crate::blocking::with_db;
use crate::error::ApiError;
use crate::users::find_user_by_token;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

/// The user a request's bearer token belongs to.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedUser {
    pub id: i64,
}

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(ApiError::Unauthorized);
            };
            if let Some(id) = state.tokens.get(&token) {
                return Ok(AuthenticatedUser { id });
            }
            let lookup = token.clone();
            let user_id = with_db(&state, move |conn| find_user_by_token(conn, &lookup)).await?;
            let id = user_id.ok_or(ApiError::Unauthorized)?;
            state.tokens.remember(&token, id);
            Ok(AuthenticatedUser { id })
        })
    }
}

/// Proof that the request carried the admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let allowed = match (bearer_token(req), req.app_data::<web::Data<AppState>>()) {
            (Some(given), Some(state)) => matches_secret(&state.admin_token, given),
            _ => false,
        };
        std::future::ready(if allowed {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        })
    }
}

/// The split's shared secret (`INTERNAL_TOKEN`), which its services send each other.
#[derive(Debug, Clone)]
pub struct InternalToken(pub crate::config::Secret);

/// Proof that the request carried the `INTERNAL_TOKEN`: one of the split's services calling
/// another. Without it, a client could post a forged reply to an inbox, or credit points.
#[derive(Debug, Clone, Copy)]
pub struct Internal;

impl FromRequest for Internal {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let allowed = match (
            bearer_token(req),
            req.app_data::<web::Data<InternalToken>>(),
        ) {
            (Some(given), Some(internal)) => matches_secret(&internal.0, given),
            _ => false,
        };
        std::future::ready(if allowed {
            Ok(Internal)
        } else {
            Err(ApiError::Unauthorized)
        })
    }
}

fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `given` is `secret`, compared in constant time, so response time does not reveal how
/// much of a token a guess got right.
pub fn matches_secret(secret: &crate::config::Secret, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    secret.expose().as_bytes().ct_eq(given.as_bytes()).into()
}
