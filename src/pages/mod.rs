//! The pages people look at: the seat map (`/`) and the operator dashboard (`/admin`),
//! rendered on the server from askama templates, with every asset compiled into the binary.
//! The seat map's script calls the same JSON API as any client; the dashboard's forms run the
//! same use cases as `GET /admin/outbox` and `POST /admin/outbox/{id}/replay`.

mod admin;
mod chart;
mod seat_map;
pub mod session;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

/// Largest form accepted (a token and a CSRF token).
const MAX_FORM_BYTES: usize = 4 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(MAX_FORM_BYTES)
            .error_handler(|error, _| unreadable("The form", error)),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|error, _| unreadable("The address", error)),
    )
    .service(web::resource("/").route(web::get().to(seat_map::page)))
    .service(web::resource("/assets/{name}").route(web::get().to(asset)))
    .service(web::resource("/admin").route(web::get().to(admin::dashboard)))
    .service(web::resource("/admin/panel").route(web::get().to(admin::panel)))
    .service(web::resource("/admin/login").route(web::post().to(admin::login)))
    .service(web::resource("/admin/logout").route(web::post().to(admin::logout)))
    .service(web::resource("/admin/replay").route(web::post().to(admin::replay)));
}

/// A form or query string the extractor could not read, answered as a page that says so.
fn unreadable(what: &str, error: impl actix_web::ResponseError + 'static) -> actix_web::Error {
    let message = format!("{what} could not be read: {error}.");
    actix_web::error::InternalError::from_response(
        error,
        problem_page(StatusCode::BAD_REQUEST, &message),
    )
    .into()
}

/// The pages' script and style, compiled in: nothing is fetched from anywhere else.
async fn asset(name: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match name.as_str() {
        "seat-map.js" => (
            include_str!("assets/seat-map.js"),
            "text/javascript; charset=utf-8",
        ),
        "admin.js" => (
            include_str!("assets/admin.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (include_str!("assets/style.css"), "text/css; charset=utf-8"),
        _ => return problem_page(StatusCode::NOT_FOUND, "There is no such asset."),
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// A rendered page with the headers every page carries: scripts and styles only from this
/// origin, never framed, nothing cached (the dashboard shows live state and a CSRF token).
fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> HttpResponse {
    let body = match rendered {
        Ok(body) => body,
        Err(error) => {
            log::error!("cannot render a page error=\"{error}\"");
            return HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The page could not be rendered.");
        }
    };
    let mut response = HttpResponse::build(status);
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    response.body(body)
}

#[derive(askama::Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    message: &'a str,
}

/// A whole page that says what went wrong, for errors outside a page's own layout.
fn problem_page(status: StatusCode, message: &str) -> HttpResponse {
    use askama::Template;
    html(status, ProblemPage { message }.render())
}
