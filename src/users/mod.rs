//! Users and their bearer tokens. A token is shown once, at sign-up; only its SHA-256 is
//! stored (computed by Postgres), so a leaked database does not leak working tokens.

use crate::db::cached_sql::cached_sql;
use crate::domain::UserName;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NewUser {
    pub id: i64,
    pub name: String,
    pub token: String,
}

#[derive(QueryableByName)]
struct UserRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
}

/// A fresh token: two v4 UUIDs give 244 random bits; the prefix makes leaked tokens greppable.
fn generate_token() -> String {
    format!(
        "ct_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub fn create_user(conn: &mut PgConnection, name: &UserName) -> QueryResult<NewUser> {
    let token = generate_token();
    let row: UserRow = cached_sql(
        "INSERT INTO users (name, token_hash) VALUES ($1, sha256(convert_to($2, 'UTF8'))) \
         RETURNING id, name",
    )
    .bind::<Text, _>(name.as_ref())
    .bind::<Text, _>(&token)
    .get_result(conn)?;
    Ok(NewUser {
        id: row.id,
        name: row.name,
        token,
    })
}

#[derive(QueryableByName)]
struct UserIdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The id of the user owning `token`, if any.
pub fn find_user_by_token(conn: &mut PgConnection, token: &str) -> QueryResult<Option<i64>> {
    cached_sql("SELECT id FROM users WHERE token_hash = sha256(convert_to($1, 'UTF8'))")
        .bind::<Text, _>(token)
        .get_result::<UserIdRow>(conn)
        .optional()
        .map(|row| row.map(|r| r.id))
}
