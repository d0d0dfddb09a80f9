use crate::helpers::spawn_app;
use serde_json::{json, Value};

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

#[tokio::test]
async fn health_reports_the_database() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}
