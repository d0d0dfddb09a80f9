//! The catalog: concerts, their schedules (dates) and seats. Seat state is derived from the
//! live reservation holding the seat, so it can never disagree with the reservations table.

use crate::db::cached_sql::cached_sql;
use crate::domain::{ConcertTitle, Price, SeatCount};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz};
use serde::Serialize;

pub struct NewSchedule {
    pub starts_at: DateTime<Utc>,
    pub seat_count: SeatCount,
    pub price: Price,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedConcert {
    pub id: i64,
    pub title: String,
    pub schedules: Vec<CreatedSchedule>,
}

#[derive(Debug, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct CreatedSchedule {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub starts_at: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    pub seat_count: i32,
    #[diesel(sql_type = BigInt)]
    pub price: i64,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Creates a concert with its schedules and every schedule's seats (numbered from 1).
pub fn create_concert(
    conn: &mut PgConnection,
    title: &ConcertTitle,
    schedules: &[NewSchedule],
) -> QueryResult<CreatedConcert> {
    conn.transaction(|conn| {
        let concert: IdRow = cached_sql("INSERT INTO concerts (title) VALUES ($1) RETURNING id")
            .bind::<Text, _>(title.as_ref())
            .get_result(conn)?;
        let mut created = Vec::with_capacity(schedules.len());
        for schedule in schedules {
            created.push(insert_schedule_with_seats(conn, concert.id, schedule)?);
        }
        Ok(CreatedConcert {
            id: concert.id,
            title: title.as_ref().to_owned(),
            schedules: created,
        })
    })
}

fn insert_schedule_with_seats(
    conn: &mut PgConnection,
    concert_id: i64,
    schedule: &NewSchedule,
) -> QueryResult<CreatedSchedule> {
    cached_sql(
        "WITH schedule AS ( \
             INSERT INTO schedules (concert_id, starts_at, seat_count, price) \
             VALUES ($1, $2, $3, $4) RETURNING id, starts_at, seat_count, price), \
         seats AS ( \
             INSERT INTO seats (schedule_id, seat_no, price) \
             SELECT schedule.id, n, schedule.price \
             FROM schedule, generate_series(1, schedule.seat_count) AS n) \
         SELECT id, starts_at, seat_count, price FROM schedule",
    )
    .bind::<BigInt, _>(concert_id)
    .bind::<Timestamptz, _>(schedule.starts_at)
    .bind::<Integer, _>(schedule.seat_count.get())
    .bind::<BigInt, _>(schedule.price.get())
    .get_result(conn)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConcertListing {
    pub id: i64,
    pub title: String,
    pub schedules: Vec<ScheduleListing>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleListing {
    pub id: i64,
    pub starts_at: DateTime<Utc>,
    pub seat_count: i32,
    pub price: i64,
    pub available_seats: i64,
}

#[derive(QueryableByName)]
struct ListingRow {
    #[diesel(sql_type = BigInt)]
    concert_id: i64,
    #[diesel(sql_type = Text)]
    title: String,
    #[diesel(sql_type = BigInt)]
    schedule_id: i64,
    #[diesel(sql_type = Timestamptz)]
    starts_at: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    seat_count: i32,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = BigInt)]
    taken: i64,
}

/// Every concert with its schedules and how many seats are neither sold nor held right now.
pub fn list_concerts(conn: &mut PgConnection) -> QueryResult<Vec<ConcertListing>> {
    let rows: Vec<ListingRow> = cached_sql(
        "SELECT c.id AS concert_id, c.title, s.id AS schedule_id, s.starts_at, s.seat_count, \
                s.price, \
                (SELECT count(*) FROM reservations r JOIN seats st ON st.id = r.seat_id \
                  WHERE st.schedule_id = s.id \
                    AND reservation_takes_seat(r.status, r.held_until, now()) \
                ) AS taken \
         FROM concerts c JOIN schedules s ON s.concert_id = c.id \
         ORDER BY c.id, s.starts_at, s.id",
    )
    .load(conn)?;
    let mut concerts: Vec<ConcertListing> = Vec::new();
    for row in rows {
        let schedule = ScheduleListing {
            id: row.schedule_id,
            starts_at: row.starts_at,
            seat_count: row.seat_count,
            price: row.price,
            available_seats: i64::from(row.seat_count) - row.taken,
        };
        match concerts.last_mut() {
            Some(concert) if concert.id == row.concert_id => concert.schedules.push(schedule),
            _ => concerts.push(ConcertListing {
                id: row.concert_id,
                title: row.title,
                schedules: vec![schedule],
            }),
        }
    }
    Ok(concerts)
}

#[derive(Debug, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct SeatView {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Integer)]
    pub seat_no: i32,
    #[diesel(sql_type = BigInt)]
    pub price: i64,
    /// `available`, `held` or `sold`.
    #[diesel(sql_type = Text)]
    pub status: String,
}

/// The seats of a schedule with their state now; `None` when the schedule does not exist.
pub fn list_seats(conn: &mut PgConnection, schedule_id: i64) -> QueryResult<Option<Vec<SeatView>>> {
    let seats: Vec<SeatView> = cached_sql(
        "SELECT s.id, s.seat_no, s.price, \
                seat_state_at(r.status, r.held_until, now()) AS status \
         FROM seats s \
         LEFT JOIN reservations r ON r.seat_id = s.id AND reservation_is_live(r.status) \
         WHERE s.schedule_id = $1 ORDER BY s.seat_no",
    )
    .bind::<BigInt, _>(schedule_id)
    .load(conn)?;
    // Every schedule has at least one seat, so no rows means no such schedule.
    Ok((!seats.is_empty()).then_some(seats))
}
