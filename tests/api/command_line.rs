//! Every binary refuses what it does not understand, with its usage, instead of ignoring it.
use std::process::Command;

#[test]
fn unknown_arguments_are_refused_with_usage_and_exit_code_2() {
    let cases: [(&str, &[&str]); 5] = [
        (env!("CARGO_BIN_EXE_concert-outbox"), &["--bogus"]),
        (env!("CARGO_BIN_EXE_concert-api"), &["frobnicate"]),
        (env!("CARGO_BIN_EXE_concert-api"), &["serve", "extra"]),
        (env!("CARGO_BIN_EXE_outbox-relay"), &["run", "--bogus"]),
        (env!("CARGO_BIN_EXE_mock-data-platform"), &["--bogus"]),
    ];
    for (binary, args) in cases {
        let output = Command::new(binary)
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{binary} {args:?}: {stderr}");
        assert!(stderr.contains("Usage:"), "{binary} {args:?}: {stderr}");
    }
}
