//! A private PostgreSQL for the one-command demo and for tests on a machine without a server
//! to point at: the machine's own server binaries, a data folder inside the project, a free
//! port on 127.0.0.1, stopped again on shutdown (and by a watchdog if this process is killed).
//!
//! PostgreSQL refuses to run as root, so on a root shell the server runs as the `postgres`
//! user. That user often cannot enter the project folder (root's home and `mktemp -d` folders
//! are mode 700); the server's files then go to a folder that user makes in its own home (or,
//! failing that, under the system's temporary folder), named after the project folder, so the
//! next start from the same folder finds them again.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod folder;
mod host;

use folder::server_folder;
use host::{find_binaries, free_port, is_root, user_exists};

/// The unprivileged user the server runs as when this process is root.
const SERVER_USER: &str = "postgres";

/// Settings written once into a new cluster: TCP on loopback only and no Unix socket, so no
/// socket path (relative, too long, or in a folder the server cannot write) can stop a start.
const CLUSTER_SETTINGS: &str = "\n# written by concert-outbox\nlisten_addresses = '127.0.0.1'\n\
unix_socket_directories = ''\nmax_connections = 200\n";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no DATABASE_URL is set and no PostgreSQL server binaries (initdb, pg_ctl) were found on PATH \
         or under /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, /opt/homebrew/bin. Either install \
         PostgreSQL (Debian/Ubuntu: `sudo apt-get install postgresql`; macOS: `brew install postgresql`) \
         or point DATABASE_URL at a server, or run `docker compose up`."
    )]
    NoBinaries,
    #[error(
        "running as root, the private PostgreSQL must run as the `{SERVER_USER}` user, and there is \
         none: run as an ordinary user, create the user (`useradd --system {SERVER_USER}`), or set DATABASE_URL"
    )]
    NoServerUser,
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("cannot prepare the folder {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where a private server keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFolder {
    /// Holds `data/` (the cluster) and `postgres.log`.
    pub path: PathBuf,
    /// The folder asked for, when the server user could not enter it and `path` is elsewhere.
    pub relocated_from: Option<PathBuf>,
}

pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    folder: ServerFolder,
    run_as: Option<&'static str>,
    port: u16,
    /// Stops the server if this process dies without dropping the guard (SIGKILL, `exit`).
    watchdog: Option<Child>,
    cleanup: Cleanup,
    /// Whether `pg_ctl start` succeeded, so there is a server to stop.
    started: bool,
}

impl EmbeddedPostgres {
    /// Starts a server whose files live in `root/postgres` (or where the server user can
    /// enter, see the module doc), initialising it on first use. Dropping the guard stops it.
    pub fn start(root: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        Self::start_in(root, Cleanup::Keep)
    }

    /// Like [`start`](Self::start), for a server nobody needs again: once it stops, `root`
    /// and the server's files are deleted, even when this process is killed.
    pub fn start_throwaway(root: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        Self::start_in(root, Cleanup::Delete(root.to_path_buf()))
    }

    fn start_in(root: &Path, cleanup: Cleanup) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bin_dir = find_binaries().ok_or(EmbeddedError::NoBinaries)?;
        let run_as = match is_root() {
            true if user_exists(SERVER_USER) => Some(SERVER_USER),
            true => return Err(EmbeddedError::NoServerUser),
            false => None,
        };
        let folder = server_folder(root, run_as)?;
        let mut postgres = EmbeddedPostgres {
            bin_dir,
            folder,
            run_as,
            port: 0,
            watchdog: None,
            cleanup,
            started: false,
        };
        if let Some(from) = &postgres.folder.relocated_from {
            log::warn!(
                "the {SERVER_USER} user cannot enter {}: the private PostgreSQL keeps its data in {} instead",
                from.display(),
                postgres.folder.path.display()
            );
        }
        postgres.initialise_if_new()?;
        postgres.port = free_port()?;
        postgres.watchdog = Some(postgres.spawn_watchdog()?);
        let started = postgres.run(
            "pg_ctl",
            &[
                "-D",
                &postgres.data_dir().display().to_string(),
                "-l",
                &postgres.log_file().display().to_string(),
                "-o",
                &format!("-p {}", postgres.port),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if let Err(error) = started {
            return Err(postgres.with_log_tail(error));
        }
        postgres.started = true;
        log::info!(
            "private PostgreSQL started port={} data_dir={} log={}",
            postgres.port,
            postgres.data_dir().display(),
            postgres.log_file().display()
        );
        Ok(postgres)
    }

    /// A URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn folder(&self) -> &ServerFolder {
        &self.folder
    }

    pub fn data_dir(&self) -> PathBuf {
        self.folder.path.join("data")
    }

    pub fn log_file(&self) -> PathBuf {
        self.folder.path.join("postgres.log")
    }

    /// Makes the cluster in `data.new` and renames it `data` only once it is configured, so a
    /// start interrupted half-way (Ctrl-C during initdb) leaves no cluster that looks ready.
    fn initialise_if_new(&self) -> Result<(), EmbeddedError> {
        let data_dir = self.data_dir();
        if data_dir.join("PG_VERSION").exists() {
            return Ok(());
        }
        let folder_error = |path: &Path| {
            let path = path.display().to_string();
            move |source| EmbeddedError::Folder { path, source }
        };
        let building = self.folder.path.join("data.new");
        if building.exists() {
            std::fs::remove_dir_all(&building).map_err(folder_error(&building))?;
        }
        log::info!(
            "initialising a private PostgreSQL data_dir={}",
            data_dir.display()
        );
        let target = building.display().to_string();
        self.run(
            "initdb",
            &[
                "-D",
                &target,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        )?;
        let conf = building.join("postgresql.conf");
        append(&conf, CLUSTER_SETTINGS).map_err(folder_error(&conf))?;
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).map_err(folder_error(&data_dir))?;
        }
        std::fs::rename(&building, &data_dir).map_err(folder_error(&data_dir))
    }

    /// A shell that waits for this process to end, then stops the server (and deletes its
    /// files for a throwaway one). It has a process group of its own, like the server, so a
    /// Ctrl-C at the terminal reaches only this process, which then stops both in order.
    fn spawn_watchdog(&self) -> Result<Child, EmbeddedError> {
        let mut script = String::from(
            "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; shift; \"$@\" >/dev/null 2>&1",
        );
        let mut command = Command::new("sh");
        if let Cleanup::Delete(root) = &self.cleanup {
            script.push_str("; rm -rf \"$SERVER_FOLDER\" \"$ROOT\"");
            command
                .env("SERVER_FOLDER", &self.folder.path)
                .env("ROOT", root);
        }
        command
            .args(["-c", &script, "watchdog", &std::process::id().to_string()])
            .args(self.stop_command())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        command.spawn().map_err(|e| EmbeddedError::Command {
            command: "sh (watchdog)".into(),
            detail: e.to_string(),
        })
    }

    /// `pg_ctl stop` for this server, as the user it runs as.
    fn stop_command(&self) -> Vec<String> {
        let mut words = Vec::new();
        if let Some(user) = self.run_as {
            words.extend(["runuser", "-u", user, "--"].map(String::from));
        }
        words.push(self.bin_dir.join("pg_ctl").display().to_string());
        words.extend(["-D".into(), self.data_dir().display().to_string()]);
        words.extend(["-m", "fast", "-w", "stop"].map(String::from));
        words
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
        // The server inherits this process group: keep it out of the terminal's, so Ctrl-C
        // does not stop it under a shutdown still writing to it.
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .process_group(0)
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

    /// Adds the end of the server's log, which says why a start failed, to `error`.
    fn with_log_tail(&self, error: EmbeddedError) -> EmbeddedError {
        let EmbeddedError::Command { command, detail } = error else {
            return error;
        };
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        EmbeddedError::Command {
            command,
            detail: format!(
                "{detail}; {} says: {}",
                self.log_file().display(),
                tail.join(" | ")
            ),
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if self.started {
            let stop = self.stop_command();
            let stopped = Command::new(&stop[0])
                .args(&stop[1..])
                .stdin(Stdio::null())
                .output();
            match stopped {
                Ok(output) if output.status.success() => log::info!("private PostgreSQL stopped"),
                Ok(output) => log::error!(
                    "cannot stop the private PostgreSQL error=\"{}\"",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                Err(error) => log::error!("cannot stop the private PostgreSQL error=\"{error}\""),
            }
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Cleanup::Delete(root) = &self.cleanup {
            let _ = std::fs::remove_dir_all(&self.folder.path);
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cleanup {
    Keep,
    /// The server's files and this folder go once the server has stopped.
    Delete(PathBuf),
}

fn append(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(file)?
        .write_all(text.as_bytes())
}
