//! The dashboard's login, session and forms over plain HTTP: what a browser is sent and what
//! a forged or stale request gets.
use crate::helpers::{spawn_app, TestApp};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

/// A browser-like client that keeps no cookies itself, so each test says exactly what it sends.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// POSTs `form` to `path`, with the session cookie when one is given.
async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client().post(app.url(path)).form(form);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

/// GETs `path`, with the session cookie when one is given.
async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client().get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

/// `name=value` of the `Set-Cookie` for `name`, with its attributes.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The `value` of the first hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Logs in as an operator; returns the session cookie pair and the dashboard's CSRF token.
async fn log_in(app: &TestApp) -> (String, String) {
    let client = client();
    let form = client.get(app.url("/admin")).send().await.unwrap();
    let login_cookie =
        pair(&set_cookie(&form, "concert_admin_login").expect("a login nonce cookie"));
    let csrf = hidden(&form.text().await.unwrap(), "csrf");
    let logged_in = client
        .post(app.url("/admin/login"))
        .header(COOKIE, &login_cookie)
        .form(&[("token", app.admin_token.as_str()), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), 303);
    let session = set_cookie(&logged_in, "concert_admin").expect("a session cookie");
    for attribute in [
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    let session = pair(&session);
    let dashboard = client
        .get(app.url("/admin"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    let html = dashboard.text().await.unwrap();
    assert!(html.contains("Backlog by destination"), "{html}");
    (session, hidden(&html, "csrf"))
}

#[tokio::test]
async fn logging_in_takes_the_admin_token_and_leaves_a_secure_http_only_strict_cookie() {
    let app = spawn_app().await;
    let (session, _) = log_in(&app).await;
    assert!(session.starts_with("concert_admin="));

    // A wrong token is refused on the page, and no session is given.
    let client = client();
    let form = client.get(app.url("/admin")).send().await.unwrap();
    let login_cookie = pair(&set_cookie(&form, "concert_admin_login").unwrap());
    let csrf = hidden(&form.text().await.unwrap(), "csrf");
    let wrong = client
        .post(app.url("/admin/login"))
        .header(COOKIE, &login_cookie)
        .form(&[("token", "guess"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(&wrong, "concert_admin").is_none());
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("That is not the admin token."));
}

#[tokio::test]
async fn a_login_without_the_forms_csrf_token_is_refused_even_with_the_right_admin_token() {
    let app = spawn_app().await;
    let forged = post_form(
        &app,
        "/admin/login",
        None,
        &[("token", app.admin_token.as_str()), ("csrf", "00")],
    )
    .await;
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "concert_admin").is_none());
}

#[tokio::test]
async fn an_action_without_the_sessions_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    let (session, csrf) = log_in(&app).await;
    for wrong in ["", "00", &csrf[..csrf.len() - 2]] {
        let forged = post_form(
            &app,
            "/admin/replay",
            Some(&session),
            &[("outbox_id", "all"), ("csrf", wrong)],
        )
        .await;
        assert_eq!(forged.status(), 403);
        assert!(forged
            .text()
            .await
            .unwrap()
            .contains("Reload the dashboard"));
    }
    // Without a session, the right-looking form is refused too.
    let anonymous = post_form(
        &app,
        "/admin/replay",
        None,
        &[("outbox_id", "all"), ("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_replay_that_finds_nothing_dead_says_so_on_the_page() {
    let app = spawn_app().await;
    let (session, csrf) = log_in(&app).await;
    let replayed = post_form(
        &app,
        "/admin/replay",
        Some(&session),
        &[("outbox_id", "999"), ("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(replayed.status(), 303);
    let location = replayed.headers()[LOCATION].to_str().unwrap().to_owned();
    let page = get(&app, &location, Some(&session))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("The replay of event 999 did nothing: it has no dead delivery now"),
        "{page}"
    );
}

#[tokio::test]
async fn the_panel_and_the_dashboard_need_a_session_and_a_changed_admin_token_ends_it() {
    let app = spawn_app().await;
    let anonymous = get(&app, "/admin/panel", None).await;
    assert_eq!(anonymous.status(), 401);
    let login = get(&app, "/admin", None).await;
    assert!(
        login.text().await.unwrap().contains("name=\"token\""),
        "the login form"
    );

    // A session signed with another server's admin token is worth nothing here.
    let other = spawn_app().await;
    let (foreign_session, _) = log_in(&other).await;
    let refused = get(&app, "/admin/panel", Some(&foreign_session)).await;
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn the_pages_come_with_their_assets_and_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let page = get(&app, "/", None).await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("No concert has been scheduled yet"), "{html}");
    for (asset, kind) in [
        ("/assets/seat-map.js", "text/javascript"),
        ("/assets/admin.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ] {
        let response = get(&app, asset, None).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }
    let missing = get(&app, "/assets/nothing.js", None).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn logging_out_ends_the_session_and_says_so() {
    let app = spawn_app().await;
    let (session, csrf) = log_in(&app).await;
    let out = post_form(
        &app,
        "/admin/logout",
        Some(&session),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(out.status(), 303);
    let forgotten = set_cookie(&out, "concert_admin").expect("the cookie is cleared");
    assert!(forgotten.contains("Max-Age=0"), "{forgotten}");
    let location = out.headers()[LOCATION].to_str().unwrap().to_owned();
    let page = get(&app, &location, None).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("Logged out."), "{html}");
    assert!(html.contains("name=\"token\""), "the login form again");
}

#[tokio::test]
async fn text_from_the_data_platform_is_shown_as_text_never_as_markup() {
    let app = spawn_app().await;
    let schedule = app.create_schedule(5, 100).await;
    let user = app.create_user(1_000).await;
    let seat = app.seat_ids(schedule).await[0];
    let reservation = app.held(&user, seat).await;
    assert_eq!(app.pay(&user, reservation, None).await.status(), 200);
    // What a hostile platform could answer, as the relay would have kept it.
    app.db.execute(
        "UPDATE outbox_deliveries SET status = 'dead', attempts = 12, \
         last_error = 'HTTP 422: <img src=x onerror=alert(1)>'",
    );
    let (session, _) = log_in(&app).await;
    let panel = get(&app, "/admin/panel", Some(&session))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        panel.contains("&#60;img src=x onerror=alert(1)&#62;")
            || panel.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{panel}"
    );
    assert!(!panel.contains("<img"), "{panel}");
}

#[tokio::test]
async fn a_mangled_address_gets_a_page_not_a_bare_error() {
    let app = spawn_app().await;
    let lenient = get(&app, "/admin?notice=replayed&count=x&id=1.5", None).await;
    assert_eq!(lenient.status(), 200, "a mangled notice shows the page");
    let duplicated = get(&app, "/?schedule=1&schedule=2", None).await;
    assert_eq!(duplicated.status(), 400);
    assert!(duplicated.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(duplicated
        .text()
        .await
        .unwrap()
        .contains("The address could not be read"));
}
