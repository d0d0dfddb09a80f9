//! The two ways into the waiting queue the queue bench compares: `concert-api`'s
//! `/queue/tokens` routes over HTTP, and the library's `Queue` called straight from the bench
//! (the same Lua scripts on the same Redis, without HTTP, authentication or JSON).

use concert_outbox::queue::{Queue, TokenStatus};
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A bench user: the database's id (what the queue keys on) and the bearer token the API
/// authenticates.
#[derive(Debug, Clone)]
pub struct QueueUser {
    pub id: i64,
    pub bearer: String,
}

#[derive(Clone)]
pub enum Line {
    Service {
        http: reqwest::Client,
        base_url: Arc<str>,
    },
    Library(Arc<Queue>),
}

/// A call that did not answer as a live queue does: `kind` is what the report counts
/// (`"poll 503"`, `"join transport"`), `detail` the first such message.
#[derive(Debug)]
pub struct Failure {
    pub kind: String,
    pub detail: String,
}

impl Failure {
    fn new(kind: String, detail: impl ToString) -> Failure {
        Failure {
            kind,
            detail: detail.to_string(),
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenBody {
    token: Uuid,
    status: String,
}

impl Line {
    /// One keep-alive client; `connections` idle sockets kept so every polling task reuses its
    /// own.
    pub fn service(base_url: &str, connections: usize) -> reqwest::Result<Line> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .build()?;
        Ok(Line::Service {
            http,
            base_url: base_url.into(),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Line::Service { .. } => "service",
            Line::Library(_) => "baseline",
        }
    }

    /// Opens this caller's connection before the phase's clock starts, so the phase measures
    /// the queue, not TCP handshakes: `GET /health` on a pooled HTTP connection, or the
    /// queue's one Redis connection.
    pub async fn warm_up(&self) -> Result<(), Failure> {
        match self {
            Line::Service { http, base_url } => {
                let answer = http.get(format!("{base_url}/health")).send().await;
                let response = answer.map_err(|e| Failure::new("warm-up transport".into(), e))?;
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(Failure::new(format!("warm-up {}", status.as_u16()), text))
                }
            }
            Line::Library(queue) => queue
                .check()
                .await
                .map_err(|e| Failure::new("warm-up redis".into(), error_chain(&e))),
        }
    }

    /// Signs `user` in as the seat map does when it loads (`GET /points`, whose bearer token
    /// the API looks up and remembers), so a later join is not the user's first request.
    /// Nothing to do for the library, which never authenticates.
    pub async fn authenticate(&self, user: &QueueUser) -> Result<(), Failure> {
        let Line::Service { http, base_url } = self else {
            return Ok(());
        };
        let response = http
            .get(format!("{base_url}/points"))
            .bearer_auth(&user.bearer)
            .send()
            .await
            .map_err(|e| Failure::new("authenticate transport".into(), e))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(Failure::new(
                format!("authenticate {}", status.as_u16()),
                text,
            ))
        }
    }

    /// `POST /queue/tokens`, or `Queue::join`.
    pub async fn join(&self, user: &QueueUser) -> Result<(Uuid, TokenStatus), Failure> {
        match self {
            Line::Service { http, base_url } => {
                let sent = http
                    .post(format!("{base_url}/queue/tokens"))
                    .bearer_auth(&user.bearer)
                    .send()
                    .await;
                let body = token_body("join", StatusCode::CREATED, sent).await?;
                Ok((body.token, status_of("join", &body.status)?))
            }
            Line::Library(queue) => queue
                .join(user.id)
                .await
                .map(|(token, place)| (token, place.status))
                .map_err(|e| Failure::new("join redis".into(), error_chain(&e))),
        }
    }

    /// `GET /queue/tokens/{token}`, or `Queue::status(.., poll = true)`: both keep a waiting
    /// place.
    pub async fn poll(&self, user: &QueueUser, token: Uuid) -> Result<TokenStatus, Failure> {
        match self {
            Line::Service { http, base_url } => {
                let sent = http
                    .get(format!("{base_url}/queue/tokens/{token}"))
                    .bearer_auth(&user.bearer)
                    .send()
                    .await;
                let body = token_body("poll", StatusCode::OK, sent).await?;
                status_of("poll", &body.status)
            }
            Line::Library(queue) => match queue.status(user.id, token, true).await {
                Ok(Some(place)) => Ok(place.status),
                Ok(None) => Err(Failure::new("poll unknown token".into(), token)),
                Err(e) => Err(Failure::new("poll redis".into(), error_chain(&e))),
            },
        }
    }

    /// `POST /queue/tokens/{token}/leave`, or `Queue::finish(.., "left")`: ends the turn and
    /// admits the next in line.
    pub async fn leave(&self, user: &QueueUser, token: Uuid) -> Result<(), Failure> {
        match self {
            Line::Service { http, base_url } => {
                let response = http
                    .post(format!("{base_url}/queue/tokens/{token}/leave"))
                    .bearer_auth(&user.bearer)
                    .send()
                    .await
                    .map_err(|e| Failure::new("leave transport".into(), e))?;
                let status = response.status();
                // Read the body so the connection goes back to the pool for the next call.
                let text = response.text().await.unwrap_or_default();
                if status == StatusCode::OK {
                    Ok(())
                } else {
                    Err(Failure::new(format!("leave {}", status.as_u16()), text))
                }
            }
            Line::Library(queue) => match queue.finish(user.id, token, "left").await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Failure::new("leave not live".into(), token)),
                Err(e) => Err(Failure::new("leave redis".into(), error_chain(&e))),
            },
        }
    }
}

/// The body of a queue answer that must have `expected`, or the failure naming the call.
async fn token_body(
    call: &str,
    expected: StatusCode,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<TokenBody, Failure> {
    let response = sent.map_err(|e| Failure::new(format!("{call} transport"), e))?;
    let status = response.status();
    if status != expected {
        let text = response.text().await.unwrap_or_default();
        return Err(Failure::new(format!("{call} {}", status.as_u16()), text));
    }
    response
        .json::<TokenBody>()
        .await
        .map_err(|e| Failure::new(format!("{call} body"), e))
}

fn status_of(call: &str, status: &str) -> Result<TokenStatus, Failure> {
    match status {
        "waiting" => Ok(TokenStatus::Waiting),
        "active" => Ok(TokenStatus::Active),
        "expired" => Ok(TokenStatus::Expired),
        other => Err(Failure::new(format!("{call} status"), other)),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    concert_outbox::error::cause_chain(error)
}
