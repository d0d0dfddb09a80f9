//! A fresh copy of the repository, as `git clone` gives it, in a folder a test makes and
//! removes: where the tests of the README's commands type them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub enum Target {
    /// `target` is a link to this build's target folder, so cargo rebuilds only what changed.
    LinkedToThisBuild,
    /// No `target` yet: the copy's owner makes its own.
    Own,
}

/// A copy of the repository's files (what `git clone` would give, plus files not yet
/// committed; outside a git checkout, every file but `target/` and `.data/`) at `dest`.
pub fn fresh_copy(dest: &Path, target: Target) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for relative in repository_files(repo) {
        let copied = dest.join(&relative);
        std::fs::create_dir_all(copied.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(&relative), &copied).unwrap();
    }
    if let Target::LinkedToThisBuild = target {
        let target_dir = Path::new(env!("CARGO_BIN_EXE_concert-outbox"))
            .parent()
            .and_then(Path::parent)
            .unwrap();
        std::os::unix::fs::symlink(target_dir, dest.join("target")).unwrap();
    }
    dest.to_path_buf()
}

fn repository_files(repo: &Path) -> Vec<PathBuf> {
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(repo)
        .output();
    match listed {
        Ok(listed) if listed.status.success() => listed
            .stdout
            .split(|b| *b == 0)
            .filter(|f| !f.is_empty())
            .map(|f| PathBuf::from(std::str::from_utf8(f).unwrap()))
            .filter(|f| repo.join(f).is_file()) // not deleted in the work tree
            .collect(),
        _ => {
            let mut files = Vec::new();
            walk(repo, Path::new(""), &mut files);
            files
        }
    }
}

fn walk(root: &Path, relative: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(root.join(relative)).unwrap() {
        let entry = entry.unwrap();
        let path = relative.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir()
            && !["target", ".data", ".git"].contains(&entry.file_name().to_str().unwrap_or(""))
        {
            walk(root, &path, files);
        } else if kind.is_file() {
            files.push(path);
        }
    }
}

/// A new folder only its owner may enter, as `mktemp -d` makes.
pub fn private_folder(prefix: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path
}

pub fn remove(path: &Path) {
    // A link is removed, never followed: `target` points at the real build.
    let _ = std::fs::remove_dir_all(path);
}

/// Folders a test made, removed when it ends, passed or failed.
pub struct Cleanup(pub Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for folder in &self.0 {
            remove(folder);
        }
    }
}
