//! The public API as the bench uses it: set-up calls (concerts, users, points) and the two
//! calls of a purchase (hold, pay), each returning what the bench needs to count.

use crate::BenchResult;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// Schedules per `POST /admin/concerts`; the API accepts up to 100 seats of 1000 each.
const SCHEDULES_PER_CONCERT: usize = 100;
const SEATS_PER_SCHEDULE: usize = 1000;
/// Parallel set-up requests: enough to be quick, few enough not to matter to the API.
const SETUP_CONCURRENCY: usize = 32;

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: String,
}

#[derive(Debug, Clone)]
pub struct BenchUser {
    pub token: String,
}

/// How a call ended: the status (and the new reservation's id for a successful hold).
pub struct Answer {
    pub status: StatusCode,
    pub reservation_id: Option<i64>,
}

impl ApiClient {
    /// One keep-alive client for everything; `connections` idle sockets are kept so every
    /// concurrent caller can reuse its own.
    pub fn new(base_url: &str, connections: usize) -> BenchResult<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .build()?;
        Ok(ApiClient {
            http,
            base_url: base_url.to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// At least `count` seats at `price`, in 1000-seat schedules, listed through the API; ids
    /// in schedule order.
    pub async fn create_seats(
        &self,
        admin_token: &str,
        count: usize,
        price: i64,
    ) -> BenchResult<Vec<i64>> {
        let schedule_sizes: Vec<usize> = (0..count.div_ceil(SEATS_PER_SCHEDULE))
            .map(|i| (count - i * SEATS_PER_SCHEDULE).min(SEATS_PER_SCHEDULE))
            .collect();
        let mut schedule_ids = Vec::new();
        for (n, sizes) in schedule_sizes.chunks(SCHEDULES_PER_CONCERT).enumerate() {
            schedule_ids.extend(self.create_concert(admin_token, n, sizes, price).await?);
        }
        let seat_lists: Vec<Vec<i64>> = stream::iter(schedule_ids)
            .map(|id| self.seat_ids(id))
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(seat_lists.into_iter().flatten().collect())
    }

    async fn create_concert(
        &self,
        admin_token: &str,
        n: usize,
        seat_counts: &[usize],
        price: i64,
    ) -> BenchResult<Vec<i64>> {
        let schedules: Vec<Value> = seat_counts
            .iter()
            .enumerate()
            .map(|(day, seats)| {
                let starts_at = chrono::Utc::now() + chrono::Duration::days(day as i64 + 1);
                json!({"starts_at": starts_at.to_rfc3339(), "seat_count": seats, "price": price})
            })
            .collect();
        let response = self
            .http
            .post(self.url("/admin/concerts"))
            .bearer_auth(admin_token)
            .json(&json!({"title": format!("bench concert {n}"), "schedules": schedules}))
            .send()
            .await?;
        let body = expect(response, StatusCode::CREATED, "POST /admin/concerts").await?;
        body["schedules"]
            .as_array()
            .ok_or("POST /admin/concerts: no schedules in the answer")?
            .iter()
            .map(|s| {
                s["id"]
                    .as_i64()
                    .ok_or_else(|| "schedule without an id".into())
            })
            .collect()
    }

    async fn seat_ids(&self, schedule_id: i64) -> BenchResult<Vec<i64>> {
        let path = format!("/schedules/{schedule_id}/seats");
        let response = self.http.get(self.url(&path)).send().await?;
        let body = expect(response, StatusCode::OK, &path).await?;
        body.as_array()
            .ok_or("seat list is not an array")?
            .iter()
            .map(|seat| {
                seat["id"]
                    .as_i64()
                    .ok_or_else(|| "seat without an id".into())
            })
            .collect()
    }

    /// `count` users, created `concurrency` at a time, each charged with `points`.
    pub async fn create_users(
        &self,
        count: usize,
        points: i64,
        concurrency: usize,
    ) -> BenchResult<Vec<BenchUser>> {
        stream::iter(0..count)
            .map(|n| self.create_user(n, points))
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }

    async fn create_user(&self, n: usize, points: i64) -> BenchResult<BenchUser> {
        let response = self
            .http
            .post(self.url("/users"))
            .json(&json!({"name": format!("bench user {n}")}))
            .send()
            .await?;
        let body = expect(response, StatusCode::CREATED, "POST /users").await?;
        let user = BenchUser {
            token: body["token"]
                .as_str()
                .ok_or("POST /users: no token")?
                .to_owned(),
        };
        let charged = self
            .http
            .post(self.url("/points/charge"))
            .bearer_auth(&user.token)
            .json(&json!({"amount": points}))
            .send()
            .await?;
        expect(charged, StatusCode::OK, "POST /points/charge").await?;
        Ok(user)
    }

    /// Opens a connection for this caller before a race starts, so the race measures holds,
    /// not TCP handshakes.
    pub async fn warm_up(&self) -> BenchResult<()> {
        self.http
            .get(self.url("/health"))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    pub async fn hold(&self, token: &str, seat_id: i64) -> BenchResult<Answer> {
        let response = self
            .http
            .post(self.url("/reservations"))
            .bearer_auth(token)
            .json(&json!({"seat_id": seat_id}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok(Answer {
            status,
            reservation_id: body["id"].as_i64().filter(|_| status.is_success()),
        })
    }

    pub async fn pay(&self, token: &str, reservation_id: i64) -> BenchResult<StatusCode> {
        let response = self
            .http
            .post(self.url(&format!("/reservations/{reservation_id}/payment")))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        // Read the body so the connection goes back to the pool for the next call.
        response.bytes().await?;
        Ok(status)
    }

    /// The reservation's `status` as `GET /reservations/{id}` shows it.
    pub async fn reservation_status(
        &self,
        token: &str,
        reservation_id: i64,
    ) -> BenchResult<String> {
        let path = format!("/reservations/{reservation_id}");
        let response = self
            .http
            .get(self.url(&path))
            .bearer_auth(token)
            .send()
            .await?;
        let body = expect(response, StatusCode::OK, &path).await?;
        Ok(body["status"]
            .as_str()
            .ok_or_else(|| format!("GET {path}: no status"))?
            .to_owned())
    }
}

/// The JSON body of a response that must have `status`; anything else is an error naming
/// the call and showing what the API said.
async fn expect(response: reqwest::Response, status: StatusCode, call: &str) -> BenchResult<Value> {
    let got = response.status();
    if got != status {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("{call}: expected {status}, got {got}: {text}").into());
    }
    Ok(response.json().await?)
}
