//! A private Redis for the one-command demo (no `REDIS_URL` given) and for tests that kill
//! theirs: the machine's `redis-server` on a free port of 127.0.0.1, keeping nothing on disk
//! (the queue is rebuilt by users joining again), stopped when the guard drops and by a
//! watchdog if this process is killed.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PrivateRedisError {
    #[error(
        "no REDIS_URL is set and no redis-server was found on PATH or in /usr/bin, /usr/sbin, \
         /usr/local/bin, /opt/homebrew/bin. Either install Redis (Debian/Ubuntu: `sudo apt-get \
         install redis-server`; macOS: `brew install redis`) or point REDIS_URL at a server"
    )]
    NoBinary,
    #[error("cannot start redis-server: {0}")]
    Start(String),
}

pub struct PrivateRedis {
    port: u16,
    server: Option<Child>,
    /// Stops the server if this process dies without dropping the guard.
    watchdog: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server on a free port, its log in `folder/redis.log`.
    pub fn start(folder: &Path) -> Result<PrivateRedis, PrivateRedisError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| PrivateRedisError::Start(format!("no free port: {e}")))?
            .port();
        Self::start_on(folder, port)
    }

    /// Starts a server on `port` (a test restarts one where its clients expect it).
    pub fn start_on(folder: &Path, port: u16) -> Result<PrivateRedis, PrivateRedisError> {
        let binary = find_binary().ok_or(PrivateRedisError::NoBinary)?;
        std::fs::create_dir_all(folder).map_err(|e| PrivateRedisError::Start(e.to_string()))?;
        let log = folder.join("redis.log");
        // Its own process group: a Ctrl-C at the terminal reaches only this process, which
        // then stops the server after the API that uses it.
        let server = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| PrivateRedisError::Start(e.to_string()))?;
        let mut redis = PrivateRedis {
            port,
            watchdog: None,
            server: Some(server),
        };
        redis.watchdog = Some(redis.spawn_watchdog()?);
        redis.wait_until_it_answers(&log)?;
        log::info!("private Redis started port={port}");
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL: the server is gone at once, with everything it held.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    fn spawn_watchdog(&self) -> Result<Child, PrivateRedisError> {
        let server = self.server_pid().unwrap_or(0).to_string();
        Command::new("sh")
            .args([
                "-c",
                "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill \"$2\" 2>/dev/null",
                "watchdog",
                &std::process::id().to_string(),
                &server,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| PrivateRedisError::Start(format!("watchdog: {e}")))
    }

    fn wait_until_it_answers(&mut self, log: &Path) -> Result<(), PrivateRedisError> {
        let deadline = Instant::now() + START_DEADLINE;
        while !answers_ping(self.port) {
            let exited = !matches!(self.server.as_mut().map(Child::try_wait), Some(Ok(None)));
            if exited || Instant::now() > deadline {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = said.lines().rev().take(3).collect();
                return Err(PrivateRedisError::Start(format!(
                    "it did not answer on port {}; {} says: {}",
                    self.port,
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // SIGTERM: it closes its clients and exits.
            let _ = Command::new("kill").arg(server.id().to_string()).status();
            let mut server = server;
            let _ = server.wait();
            log::info!("private Redis stopped");
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// Redis's own port, where a machine's server usually listens.
const DEFAULT_PORT: u16 = 6379;

/// A Redis to run against, found in this order: the one `REDIS_URL` names, the machine's on
/// 6379, or a private one (held here: dropping this stops it). The tests and the benchmark
/// find theirs so; `concert-outbox` instead starts a private one whenever `REDIS_URL` is unset.
pub enum FoundRedis {
    Given(String),
    OnDefaultPort,
    Private(PrivateRedis),
}

impl FoundRedis {
    /// `given`, else the machine's server, else a private one logging into `folder`.
    pub fn find(given: Option<&str>, folder: &Path) -> Result<FoundRedis, PrivateRedisError> {
        if let Some(url) = given.filter(|url| !url.is_empty()) {
            return Ok(FoundRedis::Given(url.to_owned()));
        }
        if answers_ping(DEFAULT_PORT) {
            return Ok(FoundRedis::OnDefaultPort);
        }
        Ok(FoundRedis::Private(PrivateRedis::start(folder)?))
    }

    pub fn url(&self) -> String {
        match self {
            FoundRedis::Given(url) => url.clone(),
            FoundRedis::OnDefaultPort => format!("redis://127.0.0.1:{DEFAULT_PORT}"),
            FoundRedis::Private(redis) => redis.url(),
        }
    }

    /// Which of the three it is, for a report.
    pub fn source(&self) -> &'static str {
        match self {
            FoundRedis::Given(_) => "REDIS_URL",
            FoundRedis::OnDefaultPort => "the machine's, on 6379",
            FoundRedis::Private(_) => "a private redis-server",
        }
    }
}

/// Whether a Redis server answers `PING` on `port` of 127.0.0.1.
pub fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    let usual = [
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/opt/homebrew/bin",
    ]
    .map(PathBuf::from);
    on_path
        .chain(usual)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}
