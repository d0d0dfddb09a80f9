//! A real browser for the page tests: headless Chromium driven through chromedriver
//! (WebDriver) with fantoccini. Each test starts its own chromedriver on a free port.

use crate::helpers::eventually;
use fantoccini::{Client, ClientBuilder, Locator};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How to get the programs when they are missing (`.ci/run` installs them).
const INSTALL: &str =
    "install them with `sudo apt-get install chromium chromium-driver` (Debian/Ubuntu)";

pub struct Browser {
    pub client: Client,
    _driver: DriverGuard,
}

impl Browser {
    pub async fn start() -> Browser {
        let driver_binary = find_program(
            &["chromedriver"],
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        )
        .unwrap_or_else(|| panic!("the page tests need chromedriver and Chromium: {INSTALL}"));
        let chromium = find_program(
            &["chromium", "chromium-browser", "google-chrome"],
            &["/usr/bin/chromium"],
        )
        .unwrap_or_else(|| panic!("the page tests need Chromium: {INSTALL}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        // A group of its own: Chromium runs as chromedriver's children, and a failed test must
        // take all of them down, not only chromedriver.
        let driver = Command::new(&driver_binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_binary.display()));
        let profile = std::env::temp_dir().join(format!(
            "concert-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let driver = DriverGuard {
            driver,
            profile: profile.clone(),
        };
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                // Root needs --no-sandbox; the rest keeps a closed network from being dialled.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        let client = eventually(
            "chromedriver to accept a session",
            Duration::from_secs(30),
            || {
                let (capabilities, webdriver) = (capabilities.clone(), webdriver.clone());
                async move {
                    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                    ClientBuilder::new(connector)
                        .capabilities(capabilities)
                        .connect(&webdriver)
                        .await
                        .ok()
                }
            },
        )
        .await;
        Browser {
            client,
            _driver: driver,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Clicks `css`, finding it again if the page replaced it in between (the dashboard's
    /// panel refreshes itself every few seconds).
    pub async fn click(&self, css: &str) {
        eventually(
            &format!("a click on {css}"),
            Duration::from_secs(10),
            || async {
                let element = self.client.find(Locator::Css(css)).await.ok()?;
                element.click().await.ok()
            },
        )
        .await
    }

    /// Replaces the text of the input `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// The element `css`, once it is on the page.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        eventually(
            &format!("{css} on the page"),
            Duration::from_secs(10),
            || async { self.client.find(Locator::Css(css)).await.ok() },
        )
        .await
    }

    /// Waits until the visible text of `css` contains `text`; returns the whole text.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> String {
        self.wait_for_text_within(css, text, Duration::from_secs(20))
            .await
    }

    /// Waits at most `timeout` until the visible text of `css` contains `text`.
    pub async fn wait_for_text_within(&self, css: &str, text: &str, timeout: Duration) -> String {
        eventually(&format!("{text:?} in {css}"), timeout, || async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            let shown = element.text().await.ok()?;
            shown.contains(text).then_some(shown)
        })
        .await
    }

    /// Waits until the visible text of `css` is exactly `text`.
    pub async fn wait_for_exact_text(&self, css: &str, text: &str) {
        eventually(
            &format!("exactly {text:?} in {css}"),
            Duration::from_secs(20),
            || async {
                let element = self.client.find(Locator::Css(css)).await.ok()?;
                (element.text().await.ok()? == text).then_some(())
            },
        )
        .await
    }

    /// Waits until `css` is on the page (a seat in a given state, a table row).
    pub async fn wait_for(&self, css: &str, timeout: Duration) {
        eventually(&format!("{css} on the page"), timeout, || async {
            self.client.find(Locator::Css(css)).await.ok().map(|_| ())
        })
        .await;
    }

    /// Waits until no element matches `css`.
    pub async fn wait_for_none(&self, css: &str, timeout: Duration) {
        eventually(&format!("no {css} on the page"), timeout, || async {
            let found = self.client.find_all(Locator::Css(css)).await.ok()?;
            found.is_empty().then_some(())
        })
        .await;
    }

    /// Saves what the browser shows to `target/screenshots/<name>.png`, for a reviewer.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("screenshots");
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the WebDriver session; dropping the browser then stops chromedriver and Chromium.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Stops chromedriver and every Chromium it started when dropped: also when a test fails
/// before it reached `close`, or while the session was still being made.
struct DriverGuard {
    driver: Child,
    profile: PathBuf,
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A program on PATH under one of `names`, or at one of `paths`.
fn find_program(names: &[&str], paths: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .chain(paths.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
}
