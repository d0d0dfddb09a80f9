//! `cargo run --release` with no DATABASE_URL: a private PostgreSQL, the API, the relay and the
//! mock platform in one process; it serves a hold and a payment, and Ctrl-C leaves nothing behind.
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn postgres_binaries_present() -> bool {
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb && command -v pg_ctl"])
        .output();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.count() > 0)
        .unwrap_or(false);
    on_path.map(|o| o.status.success()).unwrap_or(false) || debian
}

/// Lines of the welcome text, keyed by their label (`API:`, `demo token:` ...).
fn field<'a>(welcome: &'a [String], label: &str) -> &'a str {
    welcome
        .iter()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .unwrap_or_else(|| panic!("no {label:?} in {welcome:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_starts_everything_serves_a_payment_and_stops_cleanly() {
    let data_dir =
        std::env::temp_dir().join(format!("concert-demo-{}", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_concert-outbox"))
        .env_remove("DATABASE_URL")
        .env("CONCERT_DATA_DIR", &data_dir)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("MOCK_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    if !postgres_binaries_present() {
        let output = child.wait_with_output().unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("apt-get install postgresql"));
        return;
    }
    // Read stdout to the end on a thread (a closed pipe would fail the child's later writes),
    // handing over the welcome text as soon as it is complete.
    let stdout = child.stdout.take().unwrap();
    let (welcome_tx, welcome_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let (mut lines, mut welcome_tx) = (Vec::new(), Some(welcome_tx));
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.push(line);
            if lines
                .last()
                .is_some_and(|l| l.contains("Ctrl-C stops everything"))
            {
                if let Some(tx) = welcome_tx.take() {
                    let _ = tx.send(lines.clone());
                }
            }
        }
    });
    let welcome = tokio::time::timeout(Duration::from_secs(60), welcome_rx)
        .await
        .expect("the welcome text")
        .unwrap();
    let (api, mock, token) = (
        field(&welcome, "API:"),
        field(&welcome, "data platform:"),
        field(&welcome, "demo token:"),
    );

    let client = reqwest::Client::new();
    let hold: Value = client
        .post(format!("{api}/reservations"))
        .bearer_auth(token)
        .json(&serde_json::json!({"seat_id": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reservation = hold["id"].as_i64().expect("a hold on the demo concert");
    let paid = client
        .post(format!("{api}/reservations/{reservation}/payment"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    crate::helpers::eventually(
        "the demo payment at the mock platform",
        Duration::from_secs(20),
        || async {
            let received: Value = client
                .get(format!("{mock}/received"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (received["reservations"]["events"].as_array()?.len() == 1).then_some(())
        },
    )
    .await;

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let leftovers = Command::new("pgrep")
        .args(["-f", &data_dir.display().to_string()])
        .output()
        .unwrap();
    assert!(
        leftovers.stdout.is_empty(),
        "processes left behind: {}",
        String::from_utf8_lossy(&leftovers.stdout)
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
