//! `/`: the seat map of one date of one concert, rendered with the seats' state now; its
//! script then keeps the grid fresh and holds, pays and cancels through the JSON API. With the
//! waiting queue on, the page says so, and its script keeps the user's place in line and sends
//! the turn's token with each hold and payment.

use crate::app_state::AppState;
use crate::blocking::with_db;
use crate::concerts::{list_concerts, list_seats, ConcertListing, SeatView};
use crate::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use diesel::PgConnection;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Picked {
    /// Kept as text: a mistyped `?schedule=` shows the first date, not an error page.
    schedule: Option<String>,
}

#[derive(Template)]
#[template(path = "seat_map.html")]
struct SeatMapPage {
    concerts: Vec<ConcertGroup>,
    schedule: Option<ScheduleView>,
    problem: Option<String>,
    /// Whether holds and payments need a turn in the waiting queue: the script never calls
    /// the queue's routes when they do not.
    queue_enabled: bool,
}

struct ConcertGroup {
    title: String,
    dates: Vec<DateOption>,
}

struct DateOption {
    id: i64,
    label: String,
    selected: bool,
}

struct ScheduleView {
    id: i64,
    title: String,
    when: String,
    price: i64,
    seats: Vec<SeatView>,
}

pub async fn page(state: web::Data<AppState>, picked: web::Query<Picked>) -> HttpResponse {
    let wanted = picked
        .schedule
        .as_deref()
        .and_then(|s| s.parse::<i64>().ok());
    let queue_enabled = state.queue.is_some();
    let loaded = with_db(&state, move |conn| load(conn, wanted, queue_enabled)).await;
    let (status, page) = match loaded {
        Ok(page) => (StatusCode::OK, page),
        Err(error) => {
            let status = actix_web::ResponseError::status_code(&error);
            if status.is_server_error() {
                log::error!(
                    "seat map failed error=\"{}\"",
                    crate::error::cause_chain(&error)
                );
            }
            let page = SeatMapPage {
                concerts: Vec::new(),
                schedule: None,
                problem: Some(problem_text(&error)),
                queue_enabled,
            };
            (status, page)
        }
    };
    super::html(status, page.render())
}

/// The concerts for the picker and the chosen date's seats (the first date when `wanted` is
/// not one of them).
fn load(
    conn: &mut PgConnection,
    wanted: Option<i64>,
    queue_enabled: bool,
) -> Result<SeatMapPage, ApiError> {
    let concerts = list_concerts(conn)?;
    let chosen = concerts
        .iter()
        .flat_map(|c| c.schedules.iter().map(move |s| (c, s)))
        .find(|(_, s)| Some(s.id) == wanted)
        .or_else(|| {
            let first = concerts.first()?;
            Some((first, first.schedules.first()?))
        })
        .map(|(concert, schedule)| {
            (
                concert.title.clone(),
                schedule.id,
                schedule.starts_at,
                schedule.price,
            )
        });
    let schedule = match chosen {
        Some((title, id, starts_at, price)) => Some(ScheduleView {
            id,
            title,
            when: starts_at.format("%a %e %b %Y, %H:%M UTC").to_string(),
            price,
            seats: list_seats(conn, id)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(SeatMapPage {
        concerts: groups(&concerts, schedule.as_ref().map(|s| s.id)),
        schedule,
        problem: None,
        queue_enabled,
    })
}

fn groups(concerts: &[ConcertListing], selected: Option<i64>) -> Vec<ConcertGroup> {
    concerts
        .iter()
        .map(|concert| ConcertGroup {
            title: concert.title.clone(),
            dates: concert
                .schedules
                .iter()
                .map(|s| DateOption {
                    id: s.id,
                    label: format!(
                        "{} · {} of {} seats free · {} points",
                        s.starts_at.format("%a %e %b %Y, %H:%M UTC"),
                        s.available_seats,
                        s.seat_count,
                        s.price
                    ),
                    selected: Some(s.id) == selected,
                })
                .collect(),
        })
        .collect()
}

/// What the page says when it cannot show the seats; the API's own message where it has one.
fn problem_text(error: &ApiError) -> String {
    match error {
        ApiError::Unavailable(_) => {
            "The seat map cannot reach its database right now. It will show again once it answers: reload in a moment.".into()
        }
        other => format!("The seat map cannot be shown: {other}."),
    }
}
