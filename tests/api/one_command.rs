//! The README's first command, `cargo run --release`, typed the way a newcomer types it: in a
//! fresh copy of the repository as the working folder, with no DATABASE_URL, no
//! CONCERT_DATA_DIR and no other setting. As root it runs from a folder the `postgres` user
//! cannot enter (mode 700, like root's home); as an ordinary user it runs as that user. It
//! must come up, serve the seat map, answer a hold and a payment, show the event at the mock
//! platform, stop everything on Ctrl-C, and reuse its data on a second start.
//!
//! The copy's `target` is a link to this build's target folder, so the command compiles only
//! what changed instead of every dependency again; it is still `cargo run --release`, run by
//! cargo. An ordinary user cannot run root's cargo here (rustup lives in root's home), so the
//! ordinary-user run starts the binary that command built, from a copy that user owns.
use crate::fresh_copy::{fresh_copy, private_folder, Cleanup, Target};
use crate::helpers::eventually;
use crate::nats::NatsNode;
use concert_outbox::queue::private_redis::answers_ping;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Long enough for a release build of the product on two busy cores.
const BUILD_AND_START: Duration = Duration::from_secs(30 * 60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_command_works_from_a_fresh_copy_and_a_second_start_reuses_its_data() {
    require_postgres_binaries();
    let as_root = is_root();
    let parent = private_folder("concert-newcomer");
    let mut cleanup = Cleanup(vec![parent.clone()]);
    let copy = fresh_copy(&parent.join("concert-outbox"), Target::LinkedToThisBuild);

    let first = Started::cargo_run_release(&copy).await;
    if as_root {
        assert!(
            first.stdout_has("the postgres user cannot enter"),
            "the start says where the data went instead of .data: {:#?}",
            first.welcome
        );
    }
    let database_folder = first.database_folder();
    if !database_folder.starts_with(&parent) {
        cleanup.0.push(database_folder.clone()); // where root's start moved the data
    }
    let demo_token = first.field("demo token:");
    let concerts = first.check_it_serves_a_payment(false).await;
    first
        .interrupt_and_expect_clean_exit(&database_folder)
        .await;

    let second = Started::cargo_run_release(&copy).await;
    assert_eq!(second.database_folder(), database_folder);
    assert_eq!(second.field("demo token:"), demo_token);
    assert!(
        !second.stderr_has("initialising a private PostgreSQL"),
        "a second start reuses the cluster"
    );
    assert!(
        !second.stderr_has("migrations applied"),
        "a second start has no migration left to apply"
    );
    let again = second.check_it_serves_a_payment(false).await;
    assert_eq!(again, concerts, "the demo data is not seeded twice");
    second
        .interrupt_and_expect_clean_exit(&database_folder)
        .await;

    if as_root {
        run_as_an_ordinary_user(&copy).await;
    }
}

/// The README's command for the split, `cargo run --release -- split`, typed the same way:
/// both services come up on their own databases of one private PostgreSQL, talk over HTTP
/// (no NATS_URL), print what the monolith prints, serve its seat map and demo data, confirm a
/// payment as a saga whose event reaches the mock platform, and stop on Ctrl-C with that
/// PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_starts_with_one_command_from_a_fresh_copy() {
    split_from_a_fresh_copy(None).await;
}

/// The README's `NATS_URL=nats://127.0.0.1:4222 cargo run --release -- split`, against a
/// `nats-server -js` of the test's own: the same, with JetStream between the services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_split_over_jetstream_starts_with_one_command_from_a_fresh_copy() {
    let node = NatsNode::start();
    split_from_a_fresh_copy(Some(&node.url())).await;
}

async fn split_from_a_fresh_copy(nats_url: Option<&str>) {
    require_postgres_binaries();
    let parent = private_folder("concert-split");
    let mut cleanup = Cleanup(vec![parent.clone()]);
    let copy = fresh_copy(&parent.join("concert-outbox"), Target::LinkedToThisBuild);
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["run", "--release", "--", "split"])
        .current_dir(&copy);
    let typed: Vec<(&str, &str)> = nats_url.map(|url| ("NATS_URL", url)).into_iter().collect();
    let started = Started::spawn(command, &copy, &typed).await;
    let database_folder = started.database_folder();
    if !database_folder.starts_with(&parent) {
        cleanup.0.push(database_folder.clone());
    }
    let bus = started.line("between them:");
    match nats_url {
        None => assert!(bus.starts_with("HTTP"), "without NATS_URL, HTTP: {bus}"),
        Some(url) => assert!(
            bus.starts_with("JetStream") && bus.contains(url),
            "with NATS_URL, JetStream there: {bus}"
        ),
    }
    started.check_it_serves_a_payment(true).await;
    started
        .interrupt_and_expect_clean_exit(&database_folder)
        .await;
}

/// `nobody` runs the binary the first command built, from a fresh copy it owns.
async fn run_as_an_ordinary_user(built_copy: &Path) {
    let parent =
        std::env::temp_dir().join(format!("concert-user-{}", uuid::Uuid::new_v4().simple()));
    let _cleanup = Cleanup(vec![parent.clone()]);
    let copy = fresh_copy(&parent, Target::Own);
    let binary = copy.join("target/release/concert-outbox");
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(built_copy.join("target/release/concert-outbox"), &binary).unwrap();
    let owned = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(&parent)
        .status()
        .unwrap();
    assert!(owned.success());
    let mut command = Command::new("runuser");
    command
        .args(["-u", "nobody", "--"])
        .arg(&binary)
        .current_dir(&copy);
    let started = Started::spawn(command, &copy, &[]).await;
    let folder = started.database_folder();
    assert!(folder.starts_with(&copy), "{folder:?} is inside the copy");
    started.check_it_serves_a_payment(false).await;
    started.interrupt_and_expect_clean_exit(&folder).await;
}

struct Started {
    /// Taken by the clean stop; still here when an assertion failed first.
    child: Option<Child>,
    welcome: Vec<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Started {
    async fn cargo_run_release(copy: &Path) -> Started {
        let mut command = Command::new(env!("CARGO"));
        command.args(["run", "--release"]).current_dir(copy);
        Started::spawn(command, copy, &[]).await
    }

    /// Starts `command` with a newcomer's environment (no setting of the product's but the
    /// `typed` ones the README writes before the command), in a process group of its own so
    /// Ctrl-C can reach it as a terminal sends it.
    async fn spawn(mut command: Command, copy: &Path, typed: &[(&str, &str)]) -> Started {
        command.env_clear();
        command.envs(typed.iter().copied());
        for kept in [
            "PATH",
            "HOME",
            "USER",
            "LANG",
            "TERM",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
        ] {
            if let Ok(value) = std::env::var(kept) {
                command.env(kept, value);
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start in {}: {e}", copy.display()));
        let stdout = collect_lines(child.stdout.take().unwrap());
        let stderr = collect_lines(child.stderr.take().unwrap());
        // Owned from here on, so a failed wait below still stops what it started.
        let mut started = Started {
            child: Some(child),
            welcome: Vec::new(),
            stdout,
            stderr,
        };
        let deadline = Instant::now() + BUILD_AND_START;
        loop {
            let lines = started.stdout.lock().unwrap().clone();
            if lines.iter().any(|l| l.contains("Ctrl-C stops everything")) {
                started.welcome = lines;
                return started;
            }
            let child = started.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the start ended ({status}): {:#?}",
                    started.stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no welcome text: {:#?}",
                started.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first word after `label` on its line of the welcome text.
    fn field(&self, label: &str) -> String {
        let line = self.line(label);
        line.split_whitespace().next().unwrap_or("").to_owned()
    }

    /// What the welcome line `label` says after the label.
    fn line(&self, label: &str) -> String {
        self.welcome
            .iter()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|rest| rest.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} in {:#?}", self.welcome))
    }

    /// The folder the welcome text names for the private PostgreSQL's data.
    fn database_folder(&self) -> PathBuf {
        let line = self
            .welcome
            .iter()
            .find(|l| l.contains("PostgreSQL, data in "))
            .unwrap_or_else(|| panic!("no private PostgreSQL in {:#?}", self.welcome));
        let path = line.split("data in ").nth(1).unwrap();
        let path = PathBuf::from(path.trim());
        assert!(
            path.join("data/PG_VERSION").exists(),
            "a cluster in {path:?}"
        );
        path
    }

    fn stdout_has(&self, text: &str) -> bool {
        self.stdout.lock().unwrap().iter().any(|l| l.contains(text))
    }

    fn stderr_has(&self, text: &str) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// Serves the seat map and a hold and payment whose event reaches the mock platform;
    /// returns the shape of the concert catalogue it showed. The payment answers 200, or, where
    /// `a_saga` (the split), 202 and then shows `confirmed`.
    async fn check_it_serves_a_payment(&self, a_saga: bool) -> Value {
        let (api, mock, token) = (
            self.field("API:"),
            self.field("data platform:"),
            self.field("demo token:"),
        );
        let client = reqwest::Client::new();
        let seat_map = client.get(self.field("seat map:")).send().await.unwrap();
        assert_eq!(seat_map.status(), 200);
        assert!(seat_map.text().await.unwrap().contains("Demo Concert"));

        let concerts = get_json(&client, &format!("{api}/concerts")).await;
        let schedule = concerts[0]["schedules"][0]["id"]
            .as_i64()
            .expect("a demo date");
        let seats = get_json(&client, &format!("{api}/schedules/{schedule}/seats")).await;
        let seat = seats
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["status"] == "available")
            .expect("a free demo seat")["id"]
            .clone();
        let before = received_events(&client, &mock).await;
        // The monolith's demo has the waiting queue on, as the welcome text says: join it
        // first, and name the token on the hold and the payment.
        let queue_token = match a_saga {
            true => None,
            false => Some(self.join_the_queue(&client, &api, &token).await),
        };
        let with_queue_token = |request: reqwest::RequestBuilder| match &queue_token {
            Some(queue_token) => request.header("Queue-Token", queue_token),
            None => request,
        };
        let hold: Value = with_queue_token(client.post(format!("{api}/reservations")))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "seat_id": seat }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let reservation = hold["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("a hold: {hold}"));
        let paid =
            with_queue_token(client.post(format!("{api}/reservations/{reservation}/payment")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
        if a_saga && paid.status() == 202 {
            let shown = format!("{api}/reservations/{reservation}");
            eventually("the saga confirms", Duration::from_secs(30), || {
                let (client, shown, token) = (client.clone(), shown.clone(), token.clone());
                async move {
                    let reservation = client.get(&shown).bearer_auth(&token).send().await;
                    let reservation: Value = reservation.ok()?.json().await.ok()?;
                    (reservation["status"] == "confirmed").then_some(())
                }
            })
            .await;
        } else {
            assert_eq!(paid.status(), 200);
        }
        eventually(
            "the payment at the mock platform",
            Duration::from_secs(30),
            || {
                let (client, mock) = (client.clone(), mock.clone());
                async move { (received_events(&client, &mock).await == before + 1).then_some(()) }
            },
        )
        .await;
        // The catalogue's shape (concerts and their dates), which seat sales do not change.
        let shape: Vec<Value> = concerts
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let dates: Vec<&Value> = c["schedules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| &s["id"])
                    .collect();
                serde_json::json!([c["id"], c["title"], dates])
            })
            .collect();
        Value::Array(shape)
    }

    /// Joins the waiting queue as the welcome text says, expecting the demo user's turn at once
    /// on a private Redis; returns the queue token.
    async fn join_the_queue(&self, client: &reqwest::Client, api: &str, token: &str) -> String {
        assert!(
            self.line("queue:")
                .starts_with("on, 100 active at once; private Redis"),
            "{:#?}",
            self.welcome
        );
        assert!(self.stdout_has(&format!("curl -s -X POST {api}/queue/tokens")));
        let joined: Value = client
            .post(format!("{api}/queue/tokens"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(joined["status"], "active", "{joined}");
        joined["token"].as_str().unwrap().to_owned()
    }

    /// The port of the private Redis the welcome text names.
    fn redis_port(&self) -> Option<u16> {
        let line = self
            .welcome
            .iter()
            .find(|l| l.contains("private Redis on 127.0.0.1:"))?;
        line.rsplit(':').next()?.trim().parse().ok()
    }

    /// Ctrl-C as a terminal sends it, to the whole process group; everything stops, the
    /// private PostgreSQL and Redis too.
    async fn interrupt_and_expect_clean_exit(mut self, database_folder: &Path) {
        let mut child = self.child.take().unwrap();
        let redis_port = self.redis_port();
        assert!(interrupt_group(&child), "Ctrl-C reaches the start");
        let status = tokio::task::spawn_blocking(move || wait_at_most(&mut child, STOP))
            .await
            .unwrap();
        let status = status.expect("everything stops within a minute of Ctrl-C");
        assert!(
            status.success(),
            "Ctrl-C ends the start cleanly: {status:?}"
        );
        let leftovers = Command::new("pgrep")
            .args(["-f", &database_folder.display().to_string()])
            .output()
            .unwrap();
        assert!(
            leftovers.stdout.is_empty(),
            "processes left behind: {}",
            String::from_utf8_lossy(&leftovers.stdout)
        );
        if let Some(port) = redis_port {
            assert!(
                !answers_ping(port),
                "the private Redis stops with the start"
            );
        }
    }
}

impl Drop for Started {
    /// A start that a failed assertion left running is stopped, so it frees its ports.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            interrupt_group(&child);
            if wait_at_most(&mut child, STOP).is_none() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
            }
        }
    }
}

/// How long a start may take to stop after Ctrl-C.
const STOP: Duration = Duration::from_secs(60);

/// Ctrl-C as a terminal sends it: SIGINT to the child's whole process group. False when the
/// group is gone already.
fn interrupt_group(child: &Child) -> bool {
    let group = format!("-{}", child.id());
    Command::new("kill")
        .args(["-INT", "--", &group])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The child's exit status, or `None` if it is still running after `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn received_events(client: &reqwest::Client, mock: &str) -> usize {
    let received = get_json(client, &format!("{mock}/received")).await;
    received["reservations"]["events"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("JSON from {url}: {e}"))
}

fn collect_lines(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    // Read to the end (a closed pipe would fail the child's later writes).
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The first command needs PostgreSQL's server binaries; without them this says how to get
/// them rather than pass having started nothing.
fn require_postgres_binaries() {
    let found = Command::new("sh")
        .args([
            "-c",
            "command -v initdb && command -v pg_ctl || ls /usr/lib/postgresql/*/bin/initdb",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test runs `cargo run --release` with a private PostgreSQL: install the server \
         binaries first (Debian/Ubuntu: `sudo apt-get install postgresql`)"
    );
}
