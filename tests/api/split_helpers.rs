//! Harness for the split's tests: reservation-svc and payment-svc as real processes (so they
//! can be SIGKILLed and restarted), each on a database of its own, talking over HTTP or
//! JetStream, with the mock platform in-process; and the books of the two databases.

use crate::delivery_helpers::{relay_settings, MockPlatform};
use crate::helpers::{eventually, TestDb};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How the services reach each other.
pub enum Bus {
    Http,
    JetStream(String),
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One service process, restartable with the same settings.
pub struct Service {
    binary: &'static str,
    env: Vec<(String, String)>,
    pub url: String,
    child: Option<Child>,
}

impl Service {
    fn new(binary: &'static str, port: u16, env: Vec<(String, String)>) -> Service {
        Service {
            binary,
            env,
            url: format!("http://127.0.0.1:{port}"),
            child: None,
        }
    }

    /// Starts it and waits until `/health` answers 200.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.binary);
        let child = Command::new(self.binary)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary));
        self.child = Some(child);
        let health = format!("{}/health", self.url);
        eventually(
            &format!("{} to answer", self.binary),
            Duration::from_secs(60),
            || {
                let health = health.clone();
                async move {
                    let answered = reqwest::get(&health).await.ok()?;
                    answered.status().is_success().then_some(())
                }
            },
        )
        .await;
    }

    /// SIGKILL: no shutdown, no goodbye.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The split system of one test. The services come first: fields drop in order, so they stop
/// before their databases go.
pub struct Split {
    pub reservation: Service,
    pub payment: Service,
    pub reservation_db: TestDb,
    pub payment_db: TestDb,
    pub platform: MockPlatform,
    pub client: reqwest::Client,
    pub admin_token: String,
    /// What the services require on the routes they call on each other.
    pub internal_token: String,
}

pub struct SplitUser {
    pub token: String,
}

impl Split {
    /// Both services started, with the tests' quick relay settings, `bus` between them and
    /// `overrides` on top (for both).
    pub async fn start(bus: Bus, overrides: &[(&str, &str)]) -> Split {
        let mut split = Split::configure(bus, overrides).await;
        split.payment.start().await;
        split.reservation.start().await;
        split
    }

    /// Both services set up as [`Split::start`] sets them up, neither started.
    pub async fn configure(bus: Bus, overrides: &[(&str, &str)]) -> Split {
        let _ = env_logger::builder().is_test(true).try_init();
        let platform = MockPlatform::start().await;
        let (reservation_db, payment_db) = (TestDb::empty(), TestDb::empty());
        let (reservation_port, payment_port) = (free_port(), free_port());
        let admin_token = format!("admin-{}", uuid::Uuid::new_v4().simple());
        let internal_token = format!("internal-{}", uuid::Uuid::new_v4().simple());
        let mut common = relay_settings(&platform.url);
        common.push(("INTERNAL_TOKEN".into(), internal_token.clone()));
        common.push((
            "RESERVATION_SVC_URL".into(),
            format!("http://127.0.0.1:{reservation_port}"),
        ));
        common.push((
            "PAYMENT_SVC_URL".into(),
            format!("http://127.0.0.1:{payment_port}"),
        ));
        if let Bus::JetStream(url) = &bus {
            common.push(("NATS_URL".into(), url.clone()));
        }
        for (key, value) in overrides {
            common.retain(|(k, _)| k != key);
            common.push((key.to_string(), value.to_string()));
        }
        let with = |db: &TestDb, port: u16| {
            let mut env = common.clone();
            env.push(("DATABASE_URL".into(), db.url.clone()));
            env.push(("BIND_ADDR".into(), format!("127.0.0.1:{port}")));
            env.push(("ADMIN_TOKEN".into(), admin_token.clone()));
            env
        };
        let payment = Service::new(
            env!("CARGO_BIN_EXE_payment-svc"),
            payment_port,
            with(&payment_db, payment_port),
        );
        let reservation = Service::new(
            env!("CARGO_BIN_EXE_reservation-svc"),
            reservation_port,
            with(&reservation_db, reservation_port),
        );
        Split {
            reservation_db,
            payment_db,
            reservation,
            payment,
            platform,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            admin_token,
            internal_token,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.reservation.url)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("reservation-svc answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A user with `points` charged (through reservation-svc, on payment-svc).
    pub async fn user(&self, points: i64) -> SplitUser {
        let (status, created) = self
            .call(
                self.client
                    .post(self.url("/users"))
                    .json(&json!({"name": "split user"})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let user = SplitUser {
            token: created["token"].as_str().unwrap().to_owned(),
        };
        if points > 0 {
            let (status, body) = self
                .call(
                    self.client
                        .post(self.url("/points/charge"))
                        .bearer_auth(&user.token)
                        .json(&json!({ "amount": points })),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        user
    }

    /// `count` fresh seats at `price` (schedules of up to 1,000 seats).
    pub async fn seats(&self, count: usize, price: i64) -> Vec<i64> {
        let schedules: Vec<Value> = (0..count.div_ceil(1000))
            .map(|n| {
                json!({"starts_at": format!("2031-01-{:02}T19:00:00Z", n + 1),
                       "seat_count": (count - n * 1000).min(1000), "price": price})
            })
            .collect();
        let (status, concert) = self
            .call(
                self.client
                    .post(self.url("/admin/concerts"))
                    .bearer_auth(&self.admin_token)
                    .json(&json!({"title": "split", "schedules": schedules})),
            )
            .await;
        assert_eq!(status, 201, "{concert}");
        let mut seats = Vec::new();
        for schedule in concert["schedules"].as_array().unwrap() {
            let id = schedule["id"].as_i64().unwrap();
            let (_, listed) = self
                .call(self.client.get(self.url(&format!("/schedules/{id}/seats"))))
                .await;
            seats.extend(
                listed
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["id"].as_i64().unwrap()),
            );
        }
        seats
    }

    /// Holds `seat` for `user`; the reservation id.
    pub async fn hold(&self, user: &SplitUser, seat: i64) -> i64 {
        let (status, held) = self
            .call(
                self.client
                    .post(self.url("/reservations"))
                    .bearer_auth(&user.token)
                    .json(&json!({ "seat_id": seat })),
            )
            .await;
        assert_eq!(status, 201, "{held}");
        held["id"].as_i64().unwrap()
    }

    pub async fn pay(&self, user: &SplitUser, reservation: i64) -> (u16, Value) {
        self.call(
            self.client
                .post(self.url(&format!("/reservations/{reservation}/payment")))
                .bearer_auth(&user.token),
        )
        .await
    }

    pub async fn cancel(&self, user: &SplitUser, reservation: i64) -> (u16, Value) {
        self.call(
            self.client
                .post(self.url(&format!("/reservations/{reservation}/cancel")))
                .bearer_auth(&user.token),
        )
        .await
    }

    pub async fn reservation(&self, user: &SplitUser, reservation: i64) -> Value {
        let (status, body) = self
            .call(
                self.client
                    .get(self.url(&format!("/reservations/{reservation}")))
                    .bearer_auth(&user.token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn balance(&self, user: &SplitUser) -> i64 {
        let (status, body) = self
            .call(
                self.client
                    .get(self.url("/points"))
                    .bearer_auth(&user.token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["balance"].as_i64().unwrap()
    }

    /// Waits until no saga is paying or compensating and both outboxes are drained: the
    /// system is quiet.
    pub async fn wait_until_quiet(&self, within: Duration) {
        eventually("the split to go quiet", within, || async {
            let moving = self.reservation_db.scalar(
                "SELECT count(*) FROM payment_sagas WHERE state IN ('paying', 'compensating')",
            ) + self
                .reservation_db
                .scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
                + self
                    .payment_db
                    .scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL");
            (moving == 0).then_some(())
        })
        .await;
    }

    /// The books of the two databases hold: no reservation is left `payment_pending`; every
    /// confirmed reservation has exactly one payment that stands; every other has none (a
    /// refunded one nets to zero); and the balances plus the payments that stand equal the
    /// points charged. Returns how many reservations ended confirmed.
    pub fn assert_books(&self) -> i64 {
        let res = &self.reservation_db;
        let pay = &self.payment_db;
        assert_eq!(
            res.scalar("SELECT count(*) FROM reservations WHERE status = 'payment_pending'"),
            0,
            "no reservation is left payment_pending"
        );
        let confirmed: Vec<i64> = ids(
            res,
            "SELECT id FROM reservations WHERE status = 'confirmed'",
        );
        let standing: Vec<i64> = ids(
            pay,
            "SELECT reservation_id FROM payments WHERE status = 'completed'",
        );
        let mut confirmed_sorted = confirmed.clone();
        confirmed_sorted.sort_unstable();
        let mut standing_sorted = standing.clone();
        standing_sorted.sort_unstable();
        assert_eq!(
            confirmed_sorted, standing_sorted,
            "every confirmed reservation, and only those, has a payment that stands"
        );
        let balances = pay.scalar("SELECT coalesce(sum(balance), 0) FROM balances");
        let paid =
            pay.scalar("SELECT coalesce(sum(amount), 0) FROM payments WHERE status = 'completed'");
        let charged =
            pay.scalar("SELECT coalesce(sum(delta), 0) FROM point_ledger WHERE reason = 'charge'");
        assert_eq!(
            balances + paid,
            charged,
            "balances plus payments equal charges"
        );
        let ledger = pay.scalar("SELECT coalesce(sum(delta), 0) FROM point_ledger");
        assert_eq!(ledger, balances, "the ledger adds up to the balances");
        confirmed.len() as i64
    }
}

fn ids(db: &TestDb, sql: &str) -> Vec<i64> {
    let text = db.text(&format!(
        "SELECT coalesce(string_agg(x::text, ','), '') FROM ({sql}) AS q(x)"
    ));
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect()
}
