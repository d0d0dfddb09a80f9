//! `/admin`: the operator dashboard. A login form takes `ADMIN_TOKEN` once and leaves a signed
//! session cookie; every action is a form carrying the session's CSRF token. The panel (backlog,
//! dead deliveries, latest deliveries, latency chart) is re-fetched by the page's script.

use super::chart::{self, LatencyChart};
use super::session::{self, Session, LOGIN_COOKIE, SESSION_COOKIE};
use super::{html, problem_page};
use crate::app_state::AppState;
use crate::auth::matches_secret;
use crate::blocking::with_db;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use pg_outbox::admin::{latest_sent, outbox_status, replay_dead, OutboxStatus, SentEvent};
use serde::Deserialize;

/// Sent events listed under "latest deliveries".
const LATEST_LISTED: i64 = 15;

#[derive(Template)]
#[template(path = "admin_login.html")]
struct LoginPage {
    csrf: String,
    problem: Option<&'static str>,
    /// What the last action did ("Logged out."), shown above the form.
    notice: Option<Shown>,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct DashboardPage {
    panel: Panel,
    notice: Option<Shown>,
}

#[derive(Template)]
#[template(path = "admin_panel.html")]
struct PanelFragment {
    panel: Panel,
}

struct Panel {
    csrf: String,
    status: OutboxStatus,
    dead_total: i64,
    latest: Vec<LatestRow>,
    chart: LatencyChart,
    chart_width: f64,
    chart_height: f64,
}

struct LatestRow {
    event: SentEvent,
    latency: String,
}

/// A notice as the page shows it.
struct Shown {
    good: bool,
    message: String,
}

/// What the last action did, carried across the redirect that follows it.
/// Every field is text read leniently: a mangled link shows the dashboard, not an error.
#[derive(Debug, Clone, Deserialize)]
pub struct Notice {
    notice: Option<String>,
    id: Option<String>,
    count: Option<String>,
}

impl Notice {
    /// The notice to show, if the link names one this page knows.
    fn shown(&self) -> Option<Shown> {
        let count: usize = self
            .count
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let id: Option<i64> = self.id.as_deref().and_then(|i| i.parse().ok());
        let plural = if count == 1 { "delivery" } else { "deliveries" };
        Some(match (self.notice.as_deref()?, id) {
            ("replayed", Some(id)) => (true, format!("Event {id}: {count} dead {plural} re-queued.")),
            ("replayed", None) => (true, format!("{count} dead {plural} re-queued.")),
            ("nothing_dead", Some(id)) => (
                false,
                format!("The replay of event {id} did nothing: it has no dead delivery now (replayed already?)."),
            ),
            ("nothing_dead", None) => (false, "The replay did nothing: no delivery is dead now.".into()),
            ("logged_out", _) => (true, "Logged out.".into()),
            _ => return None,
        })
        .map(|(good, message)| Shown { good, message })
    }
}

pub async fn dashboard(
    req: HttpRequest,
    state: web::Data<AppState>,
    notice: web::Query<Notice>,
) -> HttpResponse {
    let notice = notice.shown();
    let Some(session) = current_session(&req, &state) else {
        return login_form(StatusCode::OK, None, notice);
    };
    match load_panel(&state, &session).await {
        Ok(panel) => html(StatusCode::OK, DashboardPage { panel, notice }.render()),
        Err(response) => response,
    }
}

/// The panel alone, for the page's script to swap in; 401 once the session has ended.
pub async fn panel(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(session) = current_session(&req, &state) else {
        return problem_page(
            StatusCode::UNAUTHORIZED,
            "The session has ended: log in again.",
        );
    };
    match load_panel(&state, &session).await {
        Ok(panel) => html(StatusCode::OK, PanelFragment { panel }.render()),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let nonce = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_owned());
    let fresh_form = nonce
        .as_deref()
        .is_some_and(|n| session::accepts_login_csrf(n, &form.csrf));
    if !fresh_form {
        return login_form(
            StatusCode::FORBIDDEN,
            Some("The login form had expired or did not come from this page. Try again."),
            None,
        );
    }
    if !matches_secret(&state.admin_token, form.token.trim()) {
        log::warn!("dashboard login refused: wrong admin token");
        return login_form(
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
            None,
        );
    }
    log::info!("dashboard login");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin"))
        .cookie(session::open(&state.admin_token))
        .cookie(session::expired(LOGIN_COOKIE))
        .finish()
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// The event whose dead deliveries to replay; none (or `all`) replays every dead one.
    outbox_id: Option<String>,
}

pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    if let Some(refused) = refusal(&req, &state, &form.csrf) {
        return refused;
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin?notice=logged_out"))
        .cookie(session::expired(SESSION_COOKIE))
        .finish()
}

pub async fn replay(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    if let Some(refused) = refusal(&req, &state, &form.csrf) {
        return refused;
    }
    let id = match form.outbox_id.as_deref().map(str::trim) {
        None | Some("") | Some("all") => None,
        Some(text) => match text.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                return problem_page(
                    StatusCode::BAD_REQUEST,
                    "The replay names no valid outbox id. Reload the dashboard and try again.",
                )
            }
        },
    };
    let location = match with_db(&state, move |conn| replay_dead(conn, id)).await {
        Ok(0) => with_id("/admin?notice=nothing_dead", id),
        Ok(count) => {
            log::info!(
                "dead deliveries re-queued from the dashboard outbox_id={} count={count}",
                id.map_or("all".to_string(), |id| id.to_string())
            );
            with_id(&format!("/admin?notice=replayed&count={count}"), id)
        }
        Err(error) => {
            log::error!(
                "dashboard replay failed error=\"{}\"",
                crate::error::cause_chain(&error)
            );
            // Said here, not after a redirect: the dashboard itself may not load while the
            // database is away.
            return problem_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The replay failed: the database did not answer, so it may not have re-queued anything. Reload the dashboard to see what is dead now.",
            );
        }
    };
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn with_id(location: &str, id: Option<i64>) -> String {
    match id {
        Some(id) => format!("{location}&id={id}"),
        None => location.to_string(),
    }
}

fn current_session(req: &HttpRequest, state: &AppState) -> Option<Session> {
    let cookie = req.cookie(SESSION_COOKIE)?;
    session::verify_cookie(&state.admin_token, cookie.value())
}

/// Why a form post may not act: no session, or a CSRF token that does not match it.
fn refusal(req: &HttpRequest, state: &AppState, csrf: &str) -> Option<HttpResponse> {
    let Some(session) = current_session(req, state) else {
        return Some(problem_page(
            StatusCode::UNAUTHORIZED,
            "The session has ended: log in again, then repeat the action.",
        ));
    };
    if !session.accepts_csrf(&state.admin_token, csrf) {
        log::warn!("dashboard action refused: CSRF token missing or wrong");
        return Some(problem_page(
            StatusCode::FORBIDDEN,
            "This form is out of date or did not come from the dashboard. Reload the dashboard and try again.",
        ));
    }
    None
}

fn login_form(
    status: StatusCode,
    problem: Option<&'static str>,
    notice: Option<Shown>,
) -> HttpResponse {
    let nonce = session::new_login_nonce();
    let page = LoginPage {
        csrf: nonce.clone(),
        problem,
        notice,
    };
    let mut response = html(status, page.render());
    if let Err(error) = response.add_cookie(&session::login_cookie(&nonce)) {
        log::error!("cannot set the login cookie error=\"{error}\"");
    }
    response
}

async fn load_panel(state: &web::Data<AppState>, session: &Session) -> Result<Panel, HttpResponse> {
    let loaded = with_db(state, |conn| {
        Ok::<_, diesel::result::Error>((outbox_status(conn)?, latest_sent(conn, LATEST_LISTED)?))
    })
    .await;
    let (status, latest) = loaded.map_err(|error| {
        log::error!(
            "dashboard cannot read the outbox error=\"{}\"",
            crate::error::cause_chain(&error)
        );
        problem_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The dashboard cannot read the outbox: the database did not answer. Reload in a moment.",
        )
    })?;
    Ok(Panel {
        csrf: session.csrf_token(&state.admin_token),
        dead_total: status.destinations.iter().map(|d| d.dead).sum(),
        status,
        latest: latest
            .into_iter()
            .map(|event| LatestRow {
                latency: format!(
                    "{:.1} ms",
                    (event.sent_at - event.created_at)
                        .num_microseconds()
                        .unwrap_or(0) as f64
                        / 1000.0
                ),
                event,
            })
            .collect(),
        chart: LatencyChart::from_slots(&pg_outbox::metrics::global().recent_delivery_latency()),
        chart_width: chart::WIDTH,
        chart_height: chart::HEIGHT,
    })
}
