//! Where a private server keeps its files, and who may enter them: the project's `.data/`
//! when the server's user can, or else a folder that user makes for itself.

use super::{EmbeddedError, ServerFolder};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `root/postgres`, owned by the server user; or, when that user cannot enter it, one of its own
/// ([`relocated_folder`]).
pub(super) fn server_folder(
    root: &Path,
    run_as: Option<&str>,
) -> Result<ServerFolder, EmbeddedError> {
    let folder_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| EmbeddedError::Folder { path, source }
    };
    std::fs::create_dir_all(root).map_err(folder_error(root))?;
    let root = root.canonicalize().map_err(folder_error(root))?;
    let wanted = root.join("postgres");
    std::fs::create_dir_all(&wanted).map_err(folder_error(&wanted))?;
    let Some(user) = run_as else {
        return Ok(ServerFolder {
            path: wanted,
            relocated_from: None,
        });
    };
    give_to(user, &wanted)?;
    if user_can_write(user, &wanted) {
        return Ok(ServerFolder {
            path: wanted,
            relocated_from: None,
        });
    }
    let elsewhere = relocated_folder(user, &wanted)?;
    Ok(ServerFolder {
        path: elsewhere,
        relocated_from: Some(wanted),
    })
}

/// A folder for the server's files that `user` made itself (so nobody else can have planted
/// it), named after `wanted` so the next start finds it: in `user`'s home, which lasts, or
/// else under the system's temporary folder.
fn relocated_folder(user: &str, wanted: &Path) -> Result<PathBuf, EmbeddedError> {
    let name = format!("concert-outbox-{:016x}", fingerprint(wanted));
    let uid = uid_of(user);
    let bases = [home_of(user), Some(std::env::temp_dir())];
    for base in bases.into_iter().flatten() {
        let folder = base.join(&name);
        let made = Command::new("runuser")
            .args(["-u", user, "--", "mkdir", "-p", "-m", "700"])
            .arg(&folder)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let theirs = std::fs::symlink_metadata(&folder)
            .is_ok_and(|m| m.is_dir() && Some(std::os::unix::fs::MetadataExt::uid(&m)) == uid);
        if made && theirs && user_can_write(user, &folder) {
            return Ok(folder);
        }
    }
    Err(EmbeddedError::Command {
        command: format!("mkdir (as {user})"),
        detail: format!(
            "the {user} user cannot enter {} and has no folder of its own to use instead; \
             clone the repository where {user} can enter, or set CONCERT_DATA_DIR or DATABASE_URL",
            wanted.display()
        ),
    })
}

/// `user`'s home folder, from the password database.
fn home_of(user: &str) -> Option<PathBuf> {
    let output = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&output.stdout).into_owned();
    let home = line.trim().split(':').nth(5)?;
    (!home.is_empty()).then(|| PathBuf::from(home))
}

fn uid_of(user: &str) -> Option<u32> {
    let output = Command::new("id").args(["-u", user]).output().ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

fn give_to(user: &str, folder: &Path) -> Result<(), EmbeddedError> {
    let status = Command::new("chown")
        .args(["-R", user])
        .arg(folder)
        .status()
        .map_err(|source| EmbeddedError::Folder {
            path: folder.display().to_string(),
            source,
        })?;
    if status.success() {
        return Ok(());
    }
    Err(EmbeddedError::Command {
        command: format!("chown -R {user} {}", folder.display()),
        detail: status.to_string(),
    })
}

/// Whether `user` can reach and write `folder` (every folder above it must let them pass).
fn user_can_write(user: &str, folder: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", user, "--", "test", "-w"])
        .arg(folder)
        .status()
        .is_ok_and(|s| s.success())
}

/// A stable name for a path (FNV-1a: the same on every start and every build).
fn fingerprint(path: &Path) -> u64 {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_keeps_its_fingerprint_and_others_differ() {
        let a = fingerprint(Path::new("/root/concert-outbox/.data/postgres"));
        assert_eq!(
            a,
            fingerprint(Path::new("/root/concert-outbox/.data/postgres"))
        );
        assert_ne!(a, fingerprint(Path::new("/root/other/.data/postgres")));
    }
}
