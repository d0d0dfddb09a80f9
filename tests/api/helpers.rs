//! The test harness: a real Postgres (the one `DATABASE_URL` names; without it a throwaway
//! container started with testcontainers, or, where no Docker engine answers, a private server
//! from the machine's own PostgreSQL binaries), one fresh database per test cloned from a
//! migrated template, and the real application served on a random port.

use concert_outbox::config::ApiConfig;
use concert_outbox::db::url_for_database;
use concert_outbox::startup::Application;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Postgres server every test database lives on, as a connection URL to a maintenance
/// database there.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_container().unwrap_or_else(|error| {
            let root = std::env::temp_dir().join(format!("concert-tests-{}", std::process::id()));
            eprintln!(
                "tests: no DATABASE_URL and no Postgres container ({error}); \
                 starting a private PostgreSQL from this machine's server binaries in {}",
                root.display()
            );
            start_private_server(&root)
        }),
    })
}

/// Starts Postgres in a container and keeps it for the life of the test process. The container
/// is owned by a parked thread with its own runtime, since tests come and go with theirs.
fn start_container() -> Result<String, String> {
    use testcontainers_modules::postgres::Postgres;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => return drop(tx.send(Err(error.to_string()))),
        };
        runtime.block_on(async move {
            let started = async {
                let container = Postgres::default().start().await?;
                let port = container.get_host_port_ipv4(5432).await?;
                let host = container.get_host().await?;
                Ok::<_, testcontainers_modules::testcontainers::TestcontainersError>((
                    container,
                    format!("postgres://postgres:postgres@{host}:{port}/postgres"),
                ))
            };
            match started.await {
                Ok((_container, url)) => {
                    let _ = tx.send(Ok(url));
                    std::future::pending::<()>().await;
                }
                Err(error) => drop(tx.send(Err(error.to_string()))),
            }
        });
    });
    rx.recv()
        .map_err(|_| "the container thread ended".to_string())?
}

/// A private server in a throwaway folder, stopped and deleted once this test process ends
/// (its watchdog sees to that, as the harness never drops it).
fn start_private_server(root: &std::path::Path) -> String {
    static SERVER: OnceLock<concert_outbox::embedded_postgres::EmbeddedPostgres> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        concert_outbox::embedded_postgres::EmbeddedPostgres::start_throwaway(root)
            .unwrap_or_else(|error| panic!("tests need a PostgreSQL: {error}"))
    });
    server.url("postgres")
}

fn admin_connection() -> PgConnection {
    PgConnection::establish(server_url()).expect("connect to the test Postgres server")
}

/// A migrated template database, named after the migrations' contents so an edited migration
/// gets a new template. Built once per server, under an advisory lock, and renamed into place
/// only when complete, so concurrent test processes never see a half-built one.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let name = format!("concert_tmpl_{:016x}", migrations_fingerprint());
        let mut admin = admin_connection();
        diesel::sql_query("SELECT pg_advisory_lock(7277001)")
            .execute(&mut admin)
            .expect("lock");
        if !database_exists(&mut admin, &name) {
            let building = format!("{name}_building");
            drop_database(&mut admin, &building);
            diesel::sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut admin)
                .expect("create template");
            let mut conn = PgConnection::establish(&url_for_database(server_url(), &building))
                .expect("connect to the template");
            concert_outbox::db::run_migrations(&mut conn).expect("migrate the template");
            drop(conn);
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                .execute(&mut admin)
                .expect("publish the template");
        }
        diesel::sql_query("SELECT pg_advisory_unlock(7277001)")
            .execute(&mut admin)
            .expect("unlock");
        name
    })
}

fn migrations_fingerprint() -> u64 {
    use std::hash::{Hash, Hasher};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The service's migrations and the outbox's, which run with them.
    let mut entries: Vec<_> = ["migrations", "crates/pg-outbox/migrations"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).expect("migrations directory"))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    let mut hasher = std::hash::DefaultHasher::new();
    for path in entries {
        path.file_name().hash(&mut hasher);
        std::fs::read(path.join("up.sql"))
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    hasher.finish()
}

fn database_exists(conn: &mut PgConnection, name: &str) -> bool {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Count>(conn)
        .expect("query pg_database")
        .n
        > 0
}

fn drop_database(conn: &mut PgConnection, name: &str) {
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(conn)
        .expect("drop database");
}

/// A database of this test's own, dropped (connections and all) when the guard drops.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub fn create() -> TestDb {
        let template = template_name();
        let name = format!("concert_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_connection();
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut admin)
            .expect("create the test database");
        TestDb {
            url: url_for_database(server_url(), &name),
            name,
        }
    }

    /// An empty database of this test's own, for a service that migrates its own at start
    /// (the split's).
    pub fn empty() -> TestDb {
        let name = format!("concert_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin_connection())
            .expect("create the test database");
        TestDb {
            url: url_for_database(server_url(), &name),
            name,
        }
    }

    pub fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to the test database")
    }

    /// The single bigint a query returns (`SELECT count(*) ...`).
    pub fn scalar(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Scalar {
            #[diesel(sql_type = BigInt)]
            value: i64,
        }
        diesel::sql_query(format!("SELECT ({sql})::bigint AS value"))
            .get_result::<Scalar>(&mut self.connect())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .value
    }

    /// The single text a query returns.
    pub fn text(&self, sql: &str) -> String {
        #[derive(QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        diesel::sql_query(format!("SELECT ({sql})::text AS value"))
            .get_result::<Text>(&mut self.connect())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .value
    }

    pub fn execute(&self, sql: &str) {
        diesel::sql_query(sql)
            .execute(&mut self.connect())
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database(&mut admin_connection(), &self.name);
    }
}

pub struct TestApp {
    pub address: String,
    pub admin_token: String,
    pub client: reqwest::Client,
    pub db: TestDb,
}

pub struct TestUser {
    pub id: i64,
    pub token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Serves the real application on a random port against a fresh database; `overrides` are
/// extra environment settings (`HOLD_TTL_SECONDS`, ...).
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let db = TestDb::create();
    let admin_token = format!("admin-{}", uuid::Uuid::new_v4().simple());
    let address = start_api(&db.url, &admin_token, overrides).await;
    TestApp {
        address,
        admin_token,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("http client"),
        db,
    }
}

/// Serves one more API process on a random port over the database at `database_url`; returns
/// its address.
pub async fn start_api(
    database_url: &str,
    admin_token: &str,
    overrides: &[(&str, &str)],
) -> String {
    let mut settings: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.into()),
        ("BIND_ADDR".into(), "127.0.0.1:0".into()),
        ("ADMIN_TOKEN".into(), admin_token.into()),
        ("DB_POOL_SIZE".into(), "10".into()),
    ]);
    for (key, value) in overrides {
        settings.insert(key.to_string(), value.to_string());
    }
    let config = ApiConfig::from_lookup(|name| settings.get(name).cloned()).expect("test config");
    let app = Application::build(config)
        .await
        .expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Creates a concert with one schedule of `seats` seats at `price`; returns the schedule id.
    pub async fn create_schedule(&self, seats: i64, price: i64) -> i64 {
        let response = self
            .client
            .post(self.url("/admin/concerts"))
            .bearer_auth(&self.admin_token)
            .json(&json!({
                "title": "Test Concert",
                "schedules": [{"starts_at": "2027-01-01T19:00:00Z", "seat_count": seats, "price": price}]
            }))
            .send()
            .await
            .expect("create concert");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("concert json");
        body["schedules"][0]["id"].as_i64().expect("schedule id")
    }

    pub async fn seat_ids(&self, schedule_id: i64) -> Vec<i64> {
        let seats: Vec<Value> = self
            .client
            .get(self.url(&format!("/schedules/{schedule_id}/seats")))
            .send()
            .await
            .expect("list seats")
            .json()
            .await
            .expect("seats json");
        seats
            .iter()
            .map(|s| s["id"].as_i64().expect("seat id"))
            .collect()
    }

    pub async fn create_user(&self, points: i64) -> TestUser {
        let body: Value = self
            .client
            .post(self.url("/users"))
            .json(&json!({"name": "Test User"}))
            .send()
            .await
            .expect("create user")
            .json()
            .await
            .expect("user json");
        let user = TestUser {
            id: body["id"].as_i64().expect("user id"),
            token: body["token"].as_str().expect("token").to_owned(),
        };
        if points > 0 {
            let response = self
                .client
                .post(self.url("/points/charge"))
                .bearer_auth(&user.token)
                .json(&json!({"amount": points}))
                .send()
                .await
                .expect("charge");
            assert_eq!(response.status(), 200);
        }
        user
    }

    pub async fn hold(&self, user: &TestUser, seat_id: i64) -> reqwest::Response {
        self.hold_at(&self.address, user, None, seat_id).await
    }

    /// `POST /reservations` at `address` (this app's, or another API process's), with the
    /// waiting queue's `Queue-Token` when given.
    pub async fn hold_at(
        &self,
        address: &str,
        user: &TestUser,
        queue_token: Option<&str>,
        seat_id: i64,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{address}/reservations"))
            .bearer_auth(&user.token)
            .json(&json!({"seat_id": seat_id}));
        if let Some(token) = queue_token {
            request = request.header("Queue-Token", token);
        }
        request.send().await.expect("hold request")
    }

    /// Holds a seat and returns the reservation id, asserting the hold succeeded.
    pub async fn held(&self, user: &TestUser, seat_id: i64) -> i64 {
        let response = self.hold(user, seat_id).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("reservation json");
        body["id"].as_i64().expect("reservation id")
    }

    pub async fn pay(
        &self,
        user: &TestUser,
        reservation_id: i64,
        key: Option<&str>,
    ) -> reqwest::Response {
        self.pay_at(&self.address, user, None, key, reservation_id)
            .await
    }

    /// `POST /reservations/{id}/payment` at `address`, with the waiting queue's `Queue-Token`
    /// and an `Idempotency-Key` when given.
    pub async fn pay_at(
        &self,
        address: &str,
        user: &TestUser,
        queue_token: Option<&str>,
        key: Option<&str>,
        reservation_id: i64,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{address}/reservations/{reservation_id}/payment"))
            .bearer_auth(&user.token);
        if let Some(token) = queue_token {
            request = request.header("Queue-Token", token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("payment request")
    }

    pub async fn get_json(&self, user: &TestUser, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs every future at once, each as its own task, and returns their outputs in order.
pub async fn join_all<T, F>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task panicked"));
    }
    outputs
}

/// The error code of an error response body.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned()
}
