//! The OpenAPI document is collected from the registered handlers; these tests fail when the
//! document and the routes the server answers drift apart.
use crate::helpers::spawn_app;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every route the API serves, as clients rely on it.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/admin/outbox"),
    ("get", "/concerts"),
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/points"),
    ("get", "/reservations/{id}"),
    ("get", "/schedules/{id}/seats"),
    ("post", "/admin/concerts"),
    ("post", "/admin/outbox/{id}/replay"),
    ("post", "/points/charge"),
    ("post", "/reservations"),
    ("post", "/reservations/{id}/cancel"),
    ("post", "/reservations/{id}/payment"),
    ("post", "/users"),
];

fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.clone(), path.clone()));
        }
    }
    routes
}

#[tokio::test]
async fn the_document_lists_exactly_the_served_routes() {
    let app = spawn_app().await;
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with('3'));
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented_routes(&document), expected);

    for (method, path) in documented_routes(&document) {
        let concrete = path.replace("{id}", "1");
        let response = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let unrouted =
            status == 405 || (status == 404 && body["error"]["message"] == "route not found");
        assert!(
            !unrouted,
            "{method} {path} is documented but not served ({status} {body})"
        );
    }
}

#[tokio::test]
async fn the_document_describes_auth_bodies_and_error_codes() {
    let app = spawn_app().await;
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["user_token"]["scheme"], "bearer");
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    let pay = &document["paths"]["/reservations/{id}/payment"]["post"];
    assert_eq!(pay["security"][0]["user_token"], serde_json::json!([]));
    for status in ["200", "404", "409", "410", "422"] {
        assert!(
            pay["responses"][status].is_object(),
            "payment documents {status}"
        );
    }
    let hold_body = &document["paths"]["/reservations"]["post"]["requestBody"];
    assert!(hold_body["content"]["application/json"]["schema"].is_object());
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
}
