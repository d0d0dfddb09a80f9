//! The mock data platform on its own: the receiver's dedup view, its fault switches, and the
//! JSONL log of what it accepted.

use mock_platform::{Faults, MockPlatformConfig};
use serde_json::{json, Value};
use std::net::TcpListener;

struct Mock {
    url: String,
    client: reqwest::Client,
}

impl Mock {
    fn start(log_file: Option<std::path::PathBuf>) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let server = mock_platform::start(MockPlatformConfig {
            listener,
            faults: Faults::default(),
            log_file,
            jetstream: None,
        })
        .unwrap();
        tokio::spawn(server);
        Mock {
            url,
            client: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> u16 {
        let response = self.client.post(format!("{}{path}", self.url)).json(&body);
        response.send().await.unwrap().status().as_u16()
    }

    async fn received(&self) -> Value {
        let response = self.client.get(format!("{}/received", self.url)).send();
        response.await.unwrap().json().await.unwrap()
    }
}

fn event(id: &str) -> Value {
    json!({"event_id": id, "event_type": "reservation.confirmed", "reservation_id": 1})
}

#[tokio::test]
async fn the_platform_keeps_one_copy_per_event_id_and_logs_each_accepted_event_once() {
    let log = std::env::temp_dir().join(format!("mock-platform-{}.jsonl", uuid::Uuid::new_v4()));
    let mock = Mock::start(Some(log.clone()));

    assert_eq!(mock.post("/reservations", event("a")).await, 200);
    assert_eq!(
        mock.post("/reservations", json!([event("a"), event("b")]))
            .await,
        200
    );
    let notice = json!({"event_id": "n", "user_id": 1, "reservation_id": 1, "message": "paid"});
    assert_eq!(mock.post("/notifications", notice.clone()).await, 200);

    let received = mock.received().await;
    assert_eq!(
        received["reservations"]["events"],
        json!([event("a"), event("b")])
    );
    assert_eq!(received["reservations"]["duplicates"], 1);
    assert_eq!(received["notifications"]["events"], json!([notice]));
    assert_eq!(received["notifications"]["duplicates"], 0);
    let logged: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(logged, vec![event("a"), event("b"), notice]);
    std::fs::remove_file(log).unwrap();
}

#[tokio::test]
async fn faults_switched_at_run_time_refuse_deliveries_without_storing_them() {
    let mock = Mock::start(None);

    assert_eq!(mock.post("/faults", json!({"down": true})).await, 200);
    assert_eq!(mock.post("/reservations", event("a")).await, 503);
    assert_eq!(
        mock.post("/faults", json!({"down": false, "fail_rate": 1.0}))
            .await,
        200
    );
    assert_eq!(mock.post("/reservations", event("a")).await, 500);
    assert_eq!(mock.post("/faults", json!({"fail_rate": 0.0})).await, 200);
    assert_eq!(mock.post("/reservations", event("a")).await, 200);
    assert_eq!(
        mock.post("/reservations", json!({"no_event_id": 1})).await,
        400
    );

    let received = mock.received().await;
    assert_eq!(received["reservations"]["events"], json!([event("a")]));
    assert_eq!(received["reservations"]["duplicates"], 0);
    assert_eq!(
        received["reservations"]["failed_requests"], 3,
        "503, 500 and 400 were answered"
    );
    assert_eq!(received["notifications"]["failed_requests"], 0);
}
