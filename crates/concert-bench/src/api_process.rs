//! The real `concert-api` binary (or another service of the workspace) as a child process on a
//! free port, serving the bench's database; stopped with SIGTERM like a deployment would stop
//! it.

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
        ApiProcess::spawn_with(database_url, settings, &[]).await
    }

    /// As [`spawn`](Self::spawn), with `extra` settings beside the measured ones.
    pub async fn spawn_with(
        database_url: &str,
        settings: &ApiSettings,
        extra: &[(&str, String)],
    ) -> BenchResult<ApiProcess> {
        let mut env = vec![("DATABASE_URL", database_url.to_owned())];
        if let Some(size) = settings.api_pool_size {
            env.push(("DB_POOL_SIZE", size.to_string()));
        }
        if let Some(holds) = settings.api_hold_concurrency {
            env.push(("HOLD_CONCURRENCY", holds.to_string()));
        }
        env.extend_from_slice(extra);
        let admin_token = format!("bench-{}", uuid::Uuid::new_v4().simple());
        ApiProcess::spawn_binary("concert-api", free_port()?, &admin_token, &env).await
    }

    /// Spawns the workspace's release binary `name` from this executable's directory, serving
    /// on `port` with `admin_token` and `env`, and waits for its `GET /health`.
    pub async fn spawn_binary(
        name: &str,
        port: u16,
        admin_token: &str,
        env: &[(&str, String)],
    ) -> BenchResult<ApiProcess> {
        let binary = release_binary(name)?;
        let mut command = Command::new(&binary);
        // A clean environment, so settings of the shell (RELAY_IN_PROCESS, DB_POOL_SIZE, ...)
        // cannot change what is measured.
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ADMIN_TOKEN", admin_token)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command.spawn()?;
        let mut api = ApiProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            admin_token: admin_token.to_owned(),
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
                return Err(
                    format!("{} exited during start-up: {status}", self.binary.display()).into(),
                );
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "{} did not answer {url} within {STARTUP_DEADLINE:?}",
            self.binary.display()
        )
        .into())
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
        Err(format!(
            "{} ignored SIGTERM for {STOP_DEADLINE:?}; killed",
            self.binary.display()
        )
        .into())
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

/// The binary `name` next to this executable, which must itself be a release build: a debug
/// service would measure the compiler's optimiser, not the service.
fn release_binary(name: &str) -> BenchResult<PathBuf> {
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
    let binary = dir.join(name);
    if !binary.is_file() {
        return Err(format!(
            "{} is missing; build it with `cargo build --release --bin {name}`",
            binary.display()
        )
        .into());
    }
    Ok(binary)
}

/// When the API binary was built, so a report shows whether it was a fresh build.
pub fn built_at(binary: &Path) -> String {
    std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
        .unwrap_or_else(|_| "unknown".into())
}

/// A port nobody listens on right now; the API binds it a moment later.
pub fn free_port() -> BenchResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
