use crate::helpers::{error_code, spawn_app};
use serde_json::json;

#[tokio::test]
async fn charging_adds_to_the_balance_and_the_ledger() {
    let app = spawn_app().await;
    let user = app.create_user(0).await;
    for (amount, expected) in [(1, 1), (10_000_000, 10_000_001)] {
        let response = app
            .client
            .post(app.url("/points/charge"))
            .bearer_auth(&user.token)
            .json(&json!({"amount": amount}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["balance"],
            expected
        );
    }
    let (_, body) = app.get_json(&user, "/points").await;
    assert_eq!(body["balance"], 10_000_001);
    assert_eq!(
        app.db.scalar("SELECT sum(delta) FROM point_ledger"),
        10_000_001
    );
}

#[tokio::test]
async fn points_need_a_valid_token() {
    let app = spawn_app().await;
    let missing = app.client.get(app.url("/points")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(error_code(missing).await, "unauthorized");
    let unknown = app
        .client
        .get(app.url("/points"))
        .bearer_auth("ct_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
}
