//! A private PostgreSQL for the one-command demo: the machine's own server binaries, a data
//! folder inside the project, a free port on 127.0.0.1, stopped again on shutdown.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no DATABASE_URL is set and no PostgreSQL server binaries (initdb, pg_ctl) were found on PATH \
         or under /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, /opt/homebrew/bin. Either install \
         PostgreSQL (Debian/Ubuntu: `sudo apt-get install postgresql`; macOS: `brew install postgresql`) \
         or point DATABASE_URL at a server, or run `docker compose up`."
    )]
    NoBinaries,
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("cannot prepare the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    run_as: Option<&'static str>,
    port: u16,
}

impl EmbeddedPostgres {
    /// Initialises `root/pg` on first use and starts the server; the returned guard stops it.
    pub fn start(root: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bin_dir = find_binaries().ok_or(EmbeddedError::NoBinaries)?;
        let data_dir = root.join("pg");
        // PostgreSQL refuses to run as root; on a root shell it runs as the `postgres` user.
        let run_as = is_root().then_some("postgres");
        prepare_dir(root, run_as)?;
        let mut postgres = EmbeddedPostgres {
            bin_dir,
            data_dir,
            run_as,
            port: 0,
        };
        if !postgres.data_dir.join("PG_VERSION").exists() {
            log::info!(
                "initialising a private PostgreSQL data_dir={}",
                postgres.data_dir.display()
            );
            let data = postgres.data_dir.display().to_string();
            postgres.run(
                "initdb",
                &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            )?;
        }
        postgres.port = free_port()?;
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=100",
            postgres.port,
            root.display()
        );
        let log_file = root.join("postgres.log").display().to_string();
        let data = postgres.data_dir.display().to_string();
        postgres.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log_file, "-o", &options, "-w", "-t", "30", "start",
            ],
        )?;
        log::info!(
            "private PostgreSQL started port={} log={log_file}",
            postgres.port
        );
        Ok(postgres)
    }

    /// A URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), EmbeddedError> {
        let binary = self.bin_dir.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        let output = command
            .args(args)
            .output()
            .map_err(|e| EmbeddedError::Command {
                command: program.into(),
                detail: e.to_string(),
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(EmbeddedError::Command {
            command: program.into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        let data = self.data_dir.display().to_string();
        match self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]) {
            Ok(()) => log::info!("private PostgreSQL stopped"),
            Err(error) => log::error!("cannot stop the private PostgreSQL error=\"{error}\""),
        }
    }
}

fn find_binaries() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versioned.sort_by_key(|dir| std::cmp::Reverse(version_of(dir)));
    let usual = [
        "/usr/local/pgsql/bin",
        "/opt/homebrew/bin",
        "/usr/local/bin",
    ]
    .map(PathBuf::from);
    on_path
        .into_iter()
        .chain(versioned)
        .chain(usual)
        .find(|dir| has_tools(dir))
}

/// `/usr/lib/postgresql/15/bin` -> 15.
fn version_of(bin_dir: &Path) -> u32 {
    bin_dir
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn prepare_dir(root: &Path, owner: Option<&str>) -> Result<(), EmbeddedError> {
    let fail = |source| EmbeddedError::DataDir {
        path: root.display().to_string(),
        source,
    };
    std::fs::create_dir_all(root).map_err(fail)?;
    if let Some(owner) = owner {
        let status = Command::new("chown")
            .args(["-R", owner])
            .arg(root)
            .status()
            .map_err(fail)?;
        if !status.success() {
            return Err(fail(std::io::Error::other(format!("chown {owner} failed"))));
        }
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, EmbeddedError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| EmbeddedError::Command {
            command: "bind".into(),
            detail: e.to_string(),
        })
}
