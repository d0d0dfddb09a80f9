//! The demo data the one-command start seeds on first run: a concert and a user with points.

use concert_outbox::concerts::{create_concert, NewSchedule};
use concert_outbox::db::cached_sql::cached_sql;
use concert_outbox::domain::{ChargeAmount, ConcertTitle, Price, SeatCount};
use concert_outbox::points::charge_points;
use concert_outbox::users::create_user;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use std::path::Path;

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
                &concert_outbox::domain::UserName::try_from("Demo User".to_string())?,
            )?;
            charge_points(conn, user.id, ChargeAmount::try_from(100_000)?)?;
            std::fs::write(token_file, &user.token).map_err(file_error)?;
            user.token
        }
    };
    if concert_outbox::concerts::list_concerts(conn)?.is_empty() {
        // Two dates of 50 seats, as in the course: the seat map has a date to pick.
        let in_days = |days| -> Result<NewSchedule, DemoError> {
            Ok(NewSchedule {
                starts_at: chrono::Utc::now() + chrono::Duration::days(days),
                seat_count: SeatCount::try_from(50)?,
                price: Price::try_from(1_000)?,
            })
        };
        create_concert(
            conn,
            &ConcertTitle::try_from("Demo Concert".to_string())?,
            &[in_days(30)?, in_days(31)?],
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
