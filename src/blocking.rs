//! Database work off the async workers, for handlers and extractors alike.

use crate::app_state::AppState;
use crate::error::ApiError;
use actix_web::web;
use diesel::PgConnection;

/// Runs one unit of database work on the blocking pool, with a pooled connection, so diesel
/// never blocks an actix worker thread. The work runs to its end even if the request is
/// dropped meanwhile, so whatever follows a commit inside `work` always happens.
pub async fn with_db<T, E, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool.get().map_err(|e| ApiError::Unavailable(Box::new(e)))?;
        work(&mut conn).map_err(Into::into)
    })
    .await
    .map_err(ApiError::internal)?
}
