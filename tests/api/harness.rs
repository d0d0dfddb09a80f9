//! The README's second command, `cargo test`, on a machine with no DATABASE_URL and no Docker
//! engine: the harness starts a private PostgreSQL from the machine's server binaries instead
//! of failing, and leaves nothing behind when the test process ends.
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn without_database_url_or_docker_the_tests_run_on_a_private_postgresql() {
    // One real test of this binary, run again in a child process with the setting unset and
    // no Docker engine reachable (an address nothing listens on).
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "catalog::a_created_concert_lists_its_schedules_and_available_seats",
            "--exact",
            "--nocapture",
        ])
        .env_remove("DATABASE_URL")
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(
        stderr.contains("starting a private PostgreSQL"),
        "it says which server it used: {stderr}"
    );
    // The child's throwaway server stops and its folder goes once the child has ended.
    let folder = std::env::temp_dir().join(format!("concert-tests-{}", child_pid(&stderr)));
    crate::helpers::eventually(
        "the private server's folder to be deleted",
        Duration::from_secs(30),
        || {
            let gone = !folder.exists();
            async move { gone.then_some(()) }
        },
    )
    .await;
}

/// The child names its server's folder (`concert-tests-<pid>`) in its log line.
fn child_pid(stderr: &str) -> String {
    stderr
        .split("concert-tests-")
        .nth(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_else(|| panic!("the server's folder in: {stderr}"))
}
