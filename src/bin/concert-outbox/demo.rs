//! The demo data the one-command start seeds on first run: a concert and a user with points.
//! The monolith writes it to its database; the split (whose user and points live in two
//! services) asks its API for the same.

use concert_outbox::concerts::{create_concert, NewSchedule};
use concert_outbox::db::cached_sql::cached_sql;
use concert_outbox::domain::{ChargeAmount, ConcertTitle, Price, SeatCount};
use concert_outbox::points::charge_points;
use concert_outbox::users::create_user;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::{json, Value};
use std::path::Path;

const TITLE: &str = "Demo Concert";
const USER: &str = "Demo User";
const POINTS: i64 = 100_000;
/// Two dates of 50 seats, as in the course: the seat map has a date to pick.
const DATES_IN_DAYS: [i64; 2] = [30, 31];
const SEATS: i64 = 50;
const PRICE: i64 = 1_000;

pub struct Demo {
    pub token: String,
    /// The first seat nobody holds yet, for the printed curl commands.
    pub free_seat: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("database error while seeding the demo")]
    Database(#[from] diesel::result::Error),
    #[error("cannot keep the demo token in {path}: {source}")]
    TokenFile {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid demo value: {0}")]
    Invalid(#[from] concert_outbox::domain::InvalidInput),
}

/// Seeds a demo concert and user unless this database has them already. The user's token is
/// shown only once by the API, so it is kept in `token_file` for later starts.
pub fn seed_demo(conn: &mut PgConnection, token_file: &Path) -> Result<Demo, DemoError> {
    let file_error = |source| DemoError::TokenFile {
        path: token_file.display().to_string(),
        source,
    };
    let known = std::fs::read_to_string(token_file)
        .ok()
        .map(|t| t.trim().to_owned());
    let token = match known.filter(|t| {
        concert_outbox::users::find_user_by_token(conn, t)
            .ok()
            .flatten()
            .is_some()
    }) {
        Some(token) => token,
        None => {
            let user = create_user(
                conn,
                &concert_outbox::domain::UserName::try_from(USER.to_string())?,
            )?;
            charge_points(conn, user.id, ChargeAmount::try_from(POINTS)?)?;
            std::fs::write(token_file, &user.token).map_err(file_error)?;
            user.token
        }
    };
    if concert_outbox::concerts::list_concerts(conn)?.is_empty() {
        let schedules = DATES_IN_DAYS
            .iter()
            .map(|&days| {
                Ok(NewSchedule {
                    starts_at: chrono::Utc::now() + chrono::Duration::days(days),
                    seat_count: SeatCount::try_from(SEATS)?,
                    price: Price::try_from(PRICE)?,
                })
            })
            .collect::<Result<Vec<_>, DemoError>>()?;
        create_concert(
            conn,
            &ConcertTitle::try_from(TITLE.to_string())?,
            &schedules,
        )?;
    }
    Ok(Demo {
        token,
        free_seat: first_free_seat(conn)?,
    })
}

fn first_free_seat(conn: &mut PgConnection) -> QueryResult<Option<i64>> {
    #[derive(QueryableByName)]
    struct Seat {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    cached_sql(
        "SELECT s.id FROM seats s WHERE NOT EXISTS ( \
             SELECT 1 FROM reservations r WHERE r.seat_id = s.id \
               AND reservation_takes_seat(r.status, r.held_until, now())) \
         ORDER BY s.id LIMIT 1",
    )
    .get_result::<Seat>(conn)
    .optional()
    .map(|seat| seat.map(|s| s.id))
}

/// The same demo through the split's API at `api`: the concert through the admin API, the
/// user through `POST /users` and its points through `POST /points/charge` (payment-svc's).
/// A token kept in `token_file` is reused while the API still knows it.
pub async fn seed_demo_through_api(
    api: &str,
    admin_token: &str,
    token_file: &Path,
) -> Result<Demo, reqwest::Error> {
    let client = reqwest::Client::new();
    let concerts: Value = client
        .get(format!("{api}/concerts"))
        .send()
        .await?
        .json()
        .await?;
    if concerts.as_array().is_none_or(Vec::is_empty) {
        let schedules: Vec<Value> = DATES_IN_DAYS
            .iter()
            .map(|&days| {
                json!({
                    "starts_at": chrono::Utc::now() + chrono::Duration::days(days),
                    "seat_count": SEATS,
                    "price": PRICE,
                })
            })
            .collect();
        client
            .post(format!("{api}/admin/concerts"))
            .bearer_auth(admin_token)
            .json(&json!({"title": TITLE, "schedules": schedules}))
            .send()
            .await?
            .error_for_status()?;
    }
    let mut known = None;
    if let Ok(token) = std::fs::read_to_string(token_file) {
        let token = token.trim().to_owned();
        let points = client
            .get(format!("{api}/points"))
            .bearer_auth(&token)
            .send()
            .await?;
        known = points.status().is_success().then_some(token);
    }
    let token = match known {
        Some(token) => token,
        None => {
            let user: Value = client
                .post(format!("{api}/users"))
                .json(&json!({"name": USER}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let token = user["token"].as_str().unwrap_or_default().to_owned();
            client
                .post(format!("{api}/points/charge"))
                .bearer_auth(&token)
                .json(&json!({"amount": POINTS}))
                .send()
                .await?
                .error_for_status()?;
            if let Err(error) = std::fs::write(token_file, &token) {
                log::warn!(
                    "cannot keep the demo token path={} error=\"{error}\"",
                    token_file.display()
                );
            }
            token
        }
    };
    Ok(Demo {
        token,
        free_seat: first_free_seat_through_api(&client, api).await?,
    })
}

async fn first_free_seat_through_api(
    client: &reqwest::Client,
    api: &str,
) -> Result<Option<i64>, reqwest::Error> {
    let concerts: Value = client
        .get(format!("{api}/concerts"))
        .send()
        .await?
        .json()
        .await?;
    let Some(schedule) = concerts[0]["schedules"][0]["id"].as_i64() else {
        return Ok(None);
    };
    let seats: Value = client
        .get(format!("{api}/schedules/{schedule}/seats"))
        .send()
        .await?
        .json()
        .await?;
    Ok(seats
        .as_array()
        .and_then(|seats| seats.iter().find(|s| s["status"] == "available"))
        .and_then(|s| s["id"].as_i64()))
}
