//! The OpenAPI document is collected from the registered handlers; these tests fail when the
//! document and the routes the server answers drift apart.
use crate::helpers::{spawn_app, TestApp};
use serde_json::{json, Value};
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
    ("post", "/queue/tokens"),
    ("get", "/queue/tokens/{token}"),
    ("post", "/queue/tokens/{token}/leave"),
    ("post", "/reservations"),
    ("post", "/reservations/{id}/cancel"),
    ("post", "/reservations/{id}/payment"),
    ("post", "/users"),
];

async fn fetch_document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `schema`, or what its `$ref` points at.
fn resolved<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

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

/// Every operation of the document, as (method, path, operation).
fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations.push((method.clone(), path.clone(), operation));
        }
    }
    operations
}

#[tokio::test]
async fn every_operation_lists_the_errors_it_can_answer_with_the_error_body() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;
    for (method, path, operation) in operations(&document) {
        let responses = operation["responses"].as_object().unwrap();
        let listed = |status: &str| responses.contains_key(status);
        let route = format!("{method} {path}");
        if path.contains("{id}") {
            assert!(listed("400"), "{route}: an id out of range is 400");
        }
        if path.contains("{token}") {
            assert!(
                listed("404"),
                "{route}: a token that is not the caller's is 404"
            );
        }
        if operation["requestBody"].is_object() {
            for status in ["400", "413", "415"] {
                assert!(listed(status), "{route}: a body can be answered {status}");
            }
        }
        if operation["security"].is_array() {
            assert!(listed("401"), "{route}: a missing token is 401");
        }
        for (status, response) in responses {
            if status.starts_with('4') || (status == "503" && path != "/health") {
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/ErrorBody",
                    "{route} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_document_bounds_every_id_and_amount_as_the_domain_does() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;
    let id_bounds = json!([1, i64::MAX]);
    let bounds = |schema: &Value| {
        let schema = resolved(&document, schema);
        json!([schema["minimum"], schema["maximum"]])
    };
    for (method, path, operation) in operations(&document) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            match (parameter["in"].as_str(), parameter["name"].as_str()) {
                (Some("path"), Some("token")) => {
                    assert_eq!(parameter["schema"]["format"], "uuid", "{method} {path}")
                }
                (Some("path"), _) => {
                    assert_eq!(bounds(&parameter["schema"]), id_bounds, "{method} {path}")
                }
                _ => {}
            }
        }
    }
    let body = |path: &str| {
        let schema = &document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        resolved(&document, schema)
    };
    assert_eq!(
        bounds(&body("/reservations")["properties"]["seat_id"]),
        id_bounds
    );
    assert_eq!(
        bounds(&body("/points/charge")["properties"]["amount"]),
        json!([1, 10_000_000])
    );
    let schedules = &body("/admin/concerts")["properties"]["schedules"];
    assert_eq!(
        (&schedules["minItems"], &schedules["maxItems"]),
        (&json!(1), &json!(100))
    );
    let schedule = resolved(&document, &schedules["items"]);
    assert_eq!(
        bounds(&schedule["properties"]["seat_count"]),
        json!([1, 1000])
    );
    assert_eq!(
        bounds(&schedule["properties"]["price"]),
        json!([1, 1_000_000_000])
    );
    let name = resolved(&document, &body("/users")["properties"]["name"]);
    assert_eq!(
        (&name["minLength"], &name["maxLength"]),
        (&json!(1), &json!(100))
    );
}

#[tokio::test]
async fn a_known_path_called_with_a_method_it_lacks_is_405_with_allow() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;
    let mut paths: Vec<(String, BTreeSet<String>)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item.as_object().unwrap().keys();
            (path.clone(), methods.map(|m| m.to_uppercase()).collect())
        })
        .collect();
    paths.push(("/openapi.json".into(), BTreeSet::from(["GET".to_string()])));
    for (path, allowed) in paths {
        let concrete = path.replace("{id}", "1");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "TRACE"] {
            if allowed.contains(method) {
                continue;
            }
            let response = app
                .client
                .request(method.parse().unwrap(), app.url(&concrete))
                .bearer_auth(&app.admin_token)
                .send()
                .await
                .unwrap();
            let case = format!("{method} {path}");
            assert_eq!(response.status(), 405, "{case}");
            let allow = response.headers()["allow"].to_str().unwrap().to_string();
            let listed: BTreeSet<String> = allow.split(',').map(|m| m.trim().to_string()).collect();
            assert_eq!(listed, allowed, "{case}: Allow: {allow}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "method_not_allowed", "{case}");
        }
    }
}

#[tokio::test]
async fn an_unknown_path_is_404_whatever_the_method() {
    let app = spawn_app().await;
    for (method, path) in [
        ("GET", "/no/such/route"),
        ("DELETE", "/concerts/1"),
        ("PUT", "/reservations/1/refund"),
        ("POST", "/points/"),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert!(response.headers().get("allow").is_none(), "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
    }
}
