//! Every class of bad input gets a 4xx with the error shape, and writes nothing.
use crate::helpers::{spawn_app, TestApp};
use serde_json::{json, Value};

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let mut request = app.client.request(method.parse().unwrap(), app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_error(
    case: &str,
    (status, body): &(u16, Value),
    expected_status: u16,
    expected_code: &str,
) {
    assert_eq!(*status, expected_status, "{case}: {body}");
    assert_eq!(body["error"]["code"], expected_code, "{case}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}: {body}"
    );
}

#[tokio::test]
async fn malformed_and_out_of_range_bodies_are_400_and_write_nothing() {
    let app = spawn_app().await;
    let user = app.create_user(0).await;
    let t = Some(user.token.as_str());
    let cases: Vec<(&str, &str, &str, Option<&str>, String)> = vec![
        (
            "malformed json",
            "POST",
            "/users",
            None,
            "{\"name\": ".into(),
        ),
        (
            "wrong type",
            "POST",
            "/users",
            None,
            json!({"name": 5}).to_string(),
        ),
        (
            "empty name",
            "POST",
            "/users",
            None,
            json!({"name": ""}).to_string(),
        ),
        (
            "long name",
            "POST",
            "/users",
            None,
            json!({"name": "x".repeat(101)}).to_string(),
        ),
        (
            "unknown field",
            "POST",
            "/users",
            None,
            json!({"name": "a", "admin": true}).to_string(),
        ),
        ("missing field", "POST", "/users", None, "{}".into()),
        (
            "negative charge",
            "POST",
            "/points/charge",
            t,
            json!({"amount": -1}).to_string(),
        ),
        (
            "zero charge",
            "POST",
            "/points/charge",
            t,
            json!({"amount": 0}).to_string(),
        ),
        (
            "huge charge",
            "POST",
            "/points/charge",
            t,
            json!({"amount": 10_000_001}).to_string(),
        ),
        (
            "overflowing charge",
            "POST",
            "/points/charge",
            t,
            "{\"amount\": 99999999999999999999999}".into(),
        ),
        (
            "fractional charge",
            "POST",
            "/points/charge",
            t,
            json!({"amount": 1.5}).to_string(),
        ),
        (
            "string charge",
            "POST",
            "/points/charge",
            t,
            json!({"amount": "100"}).to_string(),
        ),
        (
            "overflowing seat id",
            "POST",
            "/reservations",
            t,
            "{\"seat_id\": 18446744073709551616}".into(),
        ),
        (
            "negative seat id",
            "POST",
            "/reservations",
            t,
            json!({"seat_id": -3}).to_string(),
        ),
        (
            "string body",
            "POST",
            "/reservations",
            t,
            "\"seat 1\"".into(),
        ),
    ];
    for (case, method, path, token, body) in cases {
        let result = send(&app, method, path, token, Some(body)).await;
        assert_error(case, &result, 400, "validation_failed");
    }
    assert_eq!(app.db.scalar("SELECT count(*) FROM users"), 1);
    assert_eq!(app.db.scalar("SELECT count(*) FROM point_ledger"), 0);
    assert_eq!(app.db.scalar("SELECT count(*) FROM reservations"), 0);
}

#[tokio::test]
async fn bad_concerts_are_400_validation_failed() {
    let app = spawn_app().await;
    let admin = Some(app.admin_token.as_str());
    let schedule = |seats: Value, price: Value, starts: Value| {
        json!({"title": "T", "schedules": [{"starts_at": starts, "seat_count": seats, "price": price}]}).to_string()
    };
    let ok_date = json!("2027-05-01T19:00:00+09:00");
    let cases = vec![
        ("zero seats", schedule(json!(0), json!(10), ok_date.clone())),
        ("too many seats", schedule(json!(1001), json!(10), ok_date.clone())),
        ("zero price", schedule(json!(10), json!(0), ok_date.clone())),
        ("negative price", schedule(json!(10), json!(-10), ok_date.clone())),
        ("not a date", schedule(json!(10), json!(10), json!("tomorrow"))),
        ("a date Postgres cannot store", schedule(json!(10), json!(10), json!("-5000-01-01T00:00:00Z"))),
        ("a date in year 1", schedule(json!(10), json!(10), json!("0001-01-01T00:00:00Z"))),
        ("no schedules", json!({"title": "T", "schedules": []}).to_string()),
        ("empty title", json!({"title": "", "schedules": [{"starts_at": ok_date, "seat_count": 1, "price": 1}]}).to_string()),
    ];
    for (case, body) in cases {
        let result = send(&app, "POST", "/admin/concerts", admin, Some(body)).await;
        assert_error(case, &result, 400, "validation_failed");
    }
    assert_eq!(app.db.scalar("SELECT count(*) FROM concerts"), 0);
    assert_eq!(app.db.scalar("SELECT count(*) FROM seats"), 0);
}

#[tokio::test]
async fn admin_routes_need_the_admin_token() {
    let app = spawn_app().await;
    let user = app.create_user(0).await;
    let body = Some(json!({"title": "T", "schedules": [{"starts_at": "2027-01-01T00:00:00Z", "seat_count": 1, "price": 1}]}).to_string());
    for token in [None, Some("wrong"), Some(user.token.as_str())] {
        let result = send(&app, "POST", "/admin/concerts", token, body.clone()).await;
        assert_error(
            "admin without the admin token",
            &result,
            401,
            "unauthorized",
        );
    }
    assert_eq!(app.db.scalar("SELECT count(*) FROM concerts"), 0);
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let app = spawn_app().await;
    let body = json!({"name": "x".repeat(70 * 1024)}).to_string();
    let result = send(&app, "POST", "/users", None, Some(body)).await;
    assert_error("oversized body", &result, 413, "payload_too_large");
    assert_eq!(app.db.scalar("SELECT count(*) FROM users"), 0);
}

#[tokio::test]
async fn bad_ids_in_paths_and_headers_are_4xx_with_the_error_shape() {
    let app = spawn_app().await;
    let user = app.create_user(0).await;
    let t = Some(user.token.as_str());
    let overflow = send(
        &app,
        "GET",
        "/reservations/99999999999999999999999",
        t,
        None,
    )
    .await;
    assert_error("overflowing path id", &overflow, 400, "validation_failed");
    let text = send(&app, "POST", "/reservations/abc/payment", t, None).await;
    assert_error("non-numeric path id", &text, 400, "validation_failed");
    let unknown = send(&app, "GET", "/schedules/424242/seats", None, None).await;
    assert_error("unknown schedule", &unknown, 404, "not_found");
    let nowhere = send(&app, "GET", "/no/such/route", None, None).await;
    assert_error("unknown route", &nowhere, 404, "not_found");

    let response = app
        .client
        .post(app.url("/reservations/1/payment"))
        .bearer_auth(&user.token)
        .header("Idempotency-Key", "x".repeat(300))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    assert_error(
        "overlong Idempotency-Key",
        &(status, body),
        400,
        "validation_failed",
    );
}

#[tokio::test]
async fn the_edges_the_document_states_are_accepted_and_one_past_them_refused() {
    let app = spawn_app().await;
    let user = app.create_user(0).await;
    let t = Some(user.token.as_str());
    let charge = |amount: &str| format!("{{\"amount\": {amount}}}");
    for accepted in ["1", "10000000", "5.0", "5e0"] {
        let (status, body) = send(&app, "POST", "/points/charge", t, Some(charge(accepted))).await;
        assert_eq!(status, 200, "amount {accepted}: {body}");
    }
    for refused in ["0", "10000001", "5.5"] {
        let result = send(&app, "POST", "/points/charge", t, Some(charge(refused))).await;
        assert_error(
            &format!("amount {refused}"),
            &result,
            400,
            "validation_failed",
        );
    }

    for id in ["0", "-1", "9223372036854775808"] {
        let result = send(&app, "GET", &format!("/reservations/{id}"), t, None).await;
        assert_error(&format!("path id {id}"), &result, 400, "validation_failed");
    }
    let result = send(&app, "GET", "/reservations/9223372036854775807", t, None).await;
    assert_error("the largest path id", &result, 404, "not_found");
    let hold = |seat_id: &str| format!("{{\"seat_id\": {seat_id}}}");
    let result = send(
        &app,
        "POST",
        "/reservations",
        t,
        Some(hold("9223372036854775807")),
    )
    .await;
    assert_error("the largest seat id", &result, 404, "not_found");

    let admin = Some(app.admin_token.as_str());
    let concert = |title: &str, starts_at: &str, seats: i64, price: i64| {
        Some(json!({"title": title, "schedules": [{"starts_at": starts_at, "seat_count": seats, "price": price}]}).to_string())
    };
    let longest = "가".repeat(200);
    for (case, body) in [
        (
            "the longest title",
            concert(&longest, "2030-01-01T19:00:00Z", 1, 1),
        ),
        (
            "the most seats at the highest price",
            concert("T", "2030-01-01T19:00:00Z", 1000, 1_000_000_000),
        ),
        (
            "the first year as written",
            concert("T", "1970-01-01T00:30:00+01:00", 1, 1),
        ),
        (
            "the last year as written",
            concert("T", "9998-12-31T23:59:59-23:59", 1, 1),
        ),
    ] {
        let (status, body) = send(&app, "POST", "/admin/concerts", admin, body).await;
        assert_eq!(status, 201, "{case}: {body}");
    }
    let (_, listing) = send(&app, "GET", "/concerts", None, None).await;
    let last = listing.as_array().unwrap().last().unwrap()["schedules"][0]["starts_at"].clone();
    assert_eq!(
        last, "9999-01-01T23:58:59Z",
        "written back as RFC 3339 in UTC"
    );
    for (case, body) in [
        (
            "a title too long",
            concert(&"가".repeat(201), "2030-01-01T19:00:00Z", 1, 1),
        ),
        (
            "a title of ideographic spaces",
            concert("\u{3000}\u{3000}", "2030-01-01T19:00:00Z", 1, 1),
        ),
        (
            "a title with a C1 control",
            concert("a\u{85}b", "2030-01-01T19:00:00Z", 1, 1),
        ),
        (
            "a year past the last",
            concert("T", "9999-01-01T00:00:00Z", 1, 1),
        ),
        (
            "a space for the T",
            concert("T", "2030-01-01 19:00:00Z", 1, 1),
        ),
        (
            "a price too high",
            concert("T", "2030-01-01T19:00:00Z", 1, 1_000_000_001),
        ),
    ] {
        let result = send(&app, "POST", "/admin/concerts", admin, body).await;
        assert_error(case, &result, 400, "validation_failed");
    }
    assert_eq!(app.db.scalar("SELECT count(*) FROM concerts"), 4);
}
