//! A private `nats-server` with JetStream on a free port, for the benches that need a broker
//! nobody else uses.

use crate::BenchResult;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private `nats-server` with JetStream on a free port, its store in a folder removed when
/// it stops.
pub struct NatsServer {
    pub child: Child,
    port: u16,
    store: std::path::PathBuf,
}

impl NatsServer {
    pub fn start() -> BenchResult<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let store = std::env::temp_dir().join(format!(
            "concert-bench-nats-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&store)?;
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nats-server ({e}); apt-get install nats-server"))?;
        let server = NatsServer { child, port, store };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("nats-server did not start within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
