//! Real `nats-server` processes for the JetStream tests: one node, or a three-node cluster on
//! loopback, each on free ports with a store folder of its own, SIGKILLed and restarted on the
//! same ports and store. Dropped, they are killed and their folders removed.

use async_nats::jetstream;
use serde_json::Value;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_DEADLINE: Duration = Duration::from_secs(20);

/// The `nats-server` binary: on PATH, or where Debian's package puts it.
fn nats_server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("the JetStream tests need nats-server: sudo apt-get install nats-server")
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `nats-server` with JetStream.
pub struct NatsNode {
    pub name: String,
    pub port: u16,
    pub monitor_port: u16,
    args: Vec<String>,
    store: tempfile_dir::Dir,
    child: Option<Child>,
}

impl NatsNode {
    /// A single node on free ports.
    pub fn start() -> NatsNode {
        let mut node = NatsNode::configure("solo", &[]);
        node.restart();
        node
    }

    fn configure(name: &str, cluster_args: &[String]) -> NatsNode {
        let (port, monitor_port) = (free_port(), free_port());
        let store = tempfile_dir::Dir::new(&format!("nats-{name}"));
        let mut args: Vec<String> = [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &monitor_port.to_string(),
            "-js",
            "-sd",
            &store.path.display().to_string(),
            "-n",
            name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend_from_slice(cluster_args);
        NatsNode {
            name: name.to_owned(),
            port,
            monitor_port,
            args,
            store,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same ports and store, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::File::create(self.store.path.join("server.log")).unwrap();
        let child = Command::new(nats_server_binary())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server {} did not start",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no goodbye to clients or peers.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The monitoring endpoint's `/jsz` with streams.
    pub async fn jsz(&self) -> Option<Value> {
        let url = format!(
            "http://127.0.0.1:{}/jsz?accounts=true&streams=true",
            self.monitor_port
        );
        reqwest::get(url).await.ok()?.json().await.ok()
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// Three nodes routed to each other: a JetStream cluster that keeps a quorum with one down.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
}

impl NatsCluster {
    pub fn start() -> NatsCluster {
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<NatsNode> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let cluster_args = [
                    "--cluster_name".to_string(),
                    "concert".to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".to_string(),
                    routes.clone(),
                ];
                NatsNode::configure(&format!("node{}", i + 1), &cluster_args)
            })
            .collect();
        for node in &mut nodes {
            node.restart();
        }
        NatsCluster { nodes }
    }

    /// Every node's client URL, comma-separated, as `NATS_URL` takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The name of the node leading `stream`'s replicas, as a live node's monitoring
    /// endpoint reports it.
    pub async fn stream_leader(&self, stream: &str) -> Option<String> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            if let Some(leader) = node.jsz().await.and_then(|jsz| leader_of(&jsz, stream)) {
                return Some(leader);
            }
        }
        None
    }

    pub fn node_mut(&mut self, name: &str) -> &mut NatsNode {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap()
    }
}

/// `stream`'s `cluster.leader` anywhere in a `/jsz` answer.
fn leader_of(jsz: &Value, stream: &str) -> Option<String> {
    match jsz {
        Value::Object(fields) => {
            if fields.get("name").and_then(Value::as_str) == Some(stream) {
                if let Some(leader) = fields
                    .get("cluster")
                    .and_then(|c| c.get("leader"))
                    .and_then(Value::as_str)
                    .filter(|l| !l.is_empty())
                {
                    return Some(leader.to_owned());
                }
            }
            fields.values().find_map(|v| leader_of(v, stream))
        }
        Value::Array(items) => items.iter().find_map(|v| leader_of(v, stream)),
        _ => None,
    }
}

/// A JetStream context of the test's own, to read what the stream holds.
pub async fn jetstream_at(urls: &str) -> jetstream::Context {
    let servers: Vec<async_nats::ServerAddr> =
        urls.split(',').map(|url| url.parse().unwrap()).collect();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(servers)
        .await
        .unwrap();
    jetstream::new(client)
}

/// One stored message: its subject, headers and payload.
#[derive(Debug, Clone)]
pub struct Stored {
    pub sequence: u64,
    pub subject: String,
    pub msg_id: String,
    pub traceparent: Option<String>,
    pub payload: Value,
}

/// Every message of `stream`, in stream order, read by sequence.
pub async fn stored_messages(context: &jetstream::Context, stream: &str) -> Vec<Stored> {
    let mut stream = context.get_stream(stream).await.unwrap();
    let info = stream.info().await.unwrap().clone();
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut stored = Vec::new();
    for sequence in first..=last {
        // A read can fail while a restarted node catches up or the machine is busy: ask again
        // rather than count the message missing.
        let mut attempts = 0;
        let message = loop {
            match stream.get_raw_message(sequence).await {
                Ok(message) => break message,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    log::debug!("reading sequence {sequence} again: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    panic!("cannot read sequence {sequence} of {first}..={last}: {error}")
                }
            }
        };
        let header = |name: &str| {
            message
                .headers
                .get(name)
                .map(|value| value.as_str().to_owned())
        };
        stored.push(Stored {
            sequence,
            subject: message.subject.to_string(),
            msg_id: header("Nats-Msg-Id").unwrap_or_default(),
            traceparent: header("traceparent"),
            payload: serde_json::from_slice(&message.payload).unwrap(),
        });
    }
    stored
}

/// Temporary folders that are removed when dropped.
mod tempfile_dir {
    use std::path::PathBuf;

    pub struct Dir {
        pub path: PathBuf,
    }

    impl Dir {
        pub fn new(prefix: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
