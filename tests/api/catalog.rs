use crate::helpers::{eventually, server_url, spawn_app, TestApp};
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn a_created_concert_lists_its_schedules_and_available_seats() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/admin/concerts"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"title": "IU Golden Hour", "schedules": [
            {"starts_at": "2027-03-01T19:00:00Z", "seat_count": 50, "price": 1000},
            {"starts_at": "2027-03-02T19:00:00Z", "seat_count": 3, "price": 2000}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["title"], "IU Golden Hour");
    assert_eq!(created["schedules"][0]["seat_count"], 50);
    assert_eq!(created["schedules"][1]["price"], 2000);
    let second = created["schedules"][1]["id"].as_i64().unwrap();

    let user = app.create_user(0).await;
    let seats = app.seat_ids(second).await;
    assert_eq!(seats.len(), 3);
    app.held(&user, seats[0]).await;

    let concerts: Value = app
        .client
        .get(app.url("/concerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schedules = &concerts[0]["schedules"];
    assert_eq!(concerts[0]["id"], created["id"]);
    assert_eq!(schedules[0]["available_seats"], 50);
    assert_eq!(schedules[1]["available_seats"], 2);
    assert_eq!(schedules[1]["starts_at"], "2027-03-02T19:00:00Z");
}

async fn health(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Lets database `name` take connections or not; refusing also ends the open ones.
fn allow_connections(name: &str, allowed: bool) {
    let mut admin = PgConnection::establish(server_url()).unwrap();
    diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed}"))
        .execute(&mut admin)
        .unwrap();
    if !allowed {
        // Waits (up to 5 s each) until the sessions are gone, so none answers after this.
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .execute(&mut admin)
        .unwrap();
    }
}

#[tokio::test]
async fn health_says_ok_while_the_database_answers() {
    let app = spawn_app().await;
    assert_eq!(
        health(&app).await,
        (200, json!({"status": "ok", "database": "up"}))
    );
}

#[tokio::test]
async fn health_answers_503_while_the_database_does_not_answer_and_200_once_it_does() {
    let app = spawn_app().await;
    assert_eq!(health(&app).await.0, 200);
    let database = app.db.text("current_database()");

    allow_connections(&database, false);
    assert_eq!(
        health(&app).await,
        (503, json!({"status": "unavailable", "database": "down"}))
    );

    allow_connections(&database, true);
    // The pool replaces its broken connections as requests find them.
    eventually(
        "/health to answer 200 again",
        Duration::from_secs(60),
        || async { (health(&app).await.0 == 200).then_some(()) },
    )
    .await;
}
