//! The real `concert-api` binary as a child process on a free port, serving the bench's
//! database; stopped with SIGTERM like a deployment would stop it.

use crate::BenchResult;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// The API's own shutdown timeout is 10 s; past this it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

pub struct ApiProcess {
    child: Child,
    pub base_url: String,
    pub admin_token: String,
    pub binary: PathBuf,
}

/// Resident memory of the API process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    pub peak_rss_mib: f64,
    pub rss_mib: f64,
}

/// Settings of the measured `concert-api`; unset ones take the API's own defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ApiSettings {
    /// DB_POOL_SIZE for concert-api [default: the API's own default].
    #[arg(long)]
    pub api_pool_size: Option<u32>,
    /// HOLD_CONCURRENCY for concert-api [default: the API's own default].
    #[arg(long)]
    pub api_hold_concurrency: Option<u32>,
}

impl ApiProcess {
    /// Spawns `concert-api` from this executable's directory and waits for `GET /health`.
    pub async fn spawn(database_url: &str, settings: &ApiSettings) -> BenchResult<ApiProcess> {
        let binary = release_api_binary()?;
        let port = free_port()?;
        let admin_token = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let mut command = Command::new(&binary);
        // A clean environment, so settings of the shell (RELAY_IN_PROCESS, DB_POOL_SIZE, ...)
        // cannot change what is measured.
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("ADMIN_TOKEN", &admin_token)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(size) = settings.api_pool_size {
            command.env("DB_POOL_SIZE", size.to_string());
        }
        if let Some(holds) = settings.api_hold_concurrency {
            command.env("HOLD_CONCURRENCY", holds.to_string());
        }
        let child = command.spawn()?;
        let mut api = ApiProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            admin_token,
            binary,
        };
        api.wait_until_healthy().await?;
        Ok(api)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_until_healthy(&mut self) -> BenchResult<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/health", self.base_url);
        let deadline = Instant::now() + STARTUP_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("concert-api exited during start-up: {status}").into());
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("concert-api did not answer {url} within {STARTUP_DEADLINE:?}").into())
    }

    pub fn memory(&self) -> BenchResult<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib = |field: &str| -> BenchResult<f64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(field))
                .ok_or_else(|| format!("/proc status has no {field}"))?;
            let value = line.split_whitespace().nth(1).unwrap_or_default();
            Ok(value.parse::<f64>()?)
        };
        Ok(Memory {
            peak_rss_mib: kib("VmHWM:")? / 1024.0,
            rss_mib: kib("VmRSS:")? / 1024.0,
        })
    }

    /// SIGTERM (the API finishes in-flight requests and exits), then waits; killed if it
    /// outlives its own shutdown timeout.
    pub async fn stop(mut self) -> BenchResult<()> {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !signalled.success() {
            return Err(format!("kill -TERM {} failed: {signalled}", self.pid()).into());
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("concert-api ignored SIGTERM for {STOP_DEADLINE:?}; killed").into())
    }
}

impl Drop for ApiProcess {
    /// A bench that fails half-way must not leave its API running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `concert-api` next to this executable, which must itself be a release build: a debug API
/// would measure the compiler's optimiser, not the service.
fn release_api_binary() -> BenchResult<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or("cannot tell which directory concert-bench runs from")?;
    if dir.file_name() != Some(std::ffi::OsStr::new("release")) {
        return Err(format!(
            "concert-bench runs from {}, not a release build; use `cargo run --release -p concert-bench`",
            dir.display()
        )
        .into());
    }
    let api = dir.join("concert-api");
    if !api.is_file() {
        return Err(format!(
            "{} is missing; build it with `cargo build --release --bin concert-api`",
            api.display()
        )
        .into());
    }
    Ok(api)
}

/// When the API binary was built, so a report shows whether it was a fresh build.
pub fn built_at(binary: &Path) -> String {
    std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
        .unwrap_or_else(|_| "unknown".into())
}

/// A port nobody listens on right now; the API binds it a moment later.
fn free_port() -> BenchResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
