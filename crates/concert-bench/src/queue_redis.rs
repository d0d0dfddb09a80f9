//! The Redis the queue bench measures against, and the keys each phase leaves in it: the
//! machine's Redis is shared, so every phase's keys are counted (the admissions Redis itself
//! recorded) and then deleted, even when the run fails half-way.

use crate::BenchResult;
use concert_outbox::queue::private_redis::FoundRedis;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Keys fetched (and deleted) per SCAN round.
const SCAN_COUNT: usize = 1000;
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

/// REDIS_URL's server, the machine's on 6379, or a private `redis-server` stopped (and its
/// folder removed) when this drops.
pub struct BenchRedis {
    pub url: String,
    found: Option<FoundRedis>,
    folder: PathBuf,
}

/// Which server answered, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RedisNote {
    pub url: String,
    pub source: &'static str,
    pub version: String,
}

impl BenchRedis {
    pub fn choose(given: Option<&str>) -> BenchResult<BenchRedis> {
        let folder = std::env::temp_dir().join(format!(
            "concert-bench-redis-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let found = FoundRedis::find(given, &folder)?;
        Ok(BenchRedis {
            url: found.url(),
            found: Some(found),
            folder,
        })
    }

    /// The server's version from `INFO server`, so a report says what it measured.
    pub fn note(&self) -> BenchResult<RedisNote> {
        let mut conn = connect(&self.url)?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
        let version = info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        Ok(RedisNote {
            url: self.url.clone(),
            source: self.found.as_ref().map_or("", FoundRedis::source),
            version,
        })
    }
}

impl Drop for BenchRedis {
    fn drop(&mut self) {
        // A private server is stopped first: it writes its log into the folder until it exits.
        drop(self.found.take());
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// One phase's keys (`{prefix}:*`): counted when the phase ends, deleted when this drops.
pub struct PhaseKeys {
    url: String,
    /// The queue's key prefix, without the hash-tag braces the queue adds.
    pub prefix: String,
}

impl PhaseKeys {
    pub fn new(url: &str, phase: &str) -> PhaseKeys {
        PhaseKeys {
            url: url.to_owned(),
            prefix: format!(
                "concert-bench-queue-{}-{phase}",
                uuid::Uuid::new_v4().simple()
            ),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Admissions of the queue keyed by `prefix` as its scripts counted them
    /// (`{prefix}:admitted:<second>`, each kept 120 s after that second's last admission):
    /// independent of what the clients saw.
    pub fn admissions_recorded_at(url: &str, prefix: &str) -> BenchResult<u64> {
        let mut conn = connect(url)?;
        let keys = scan(&mut conn, &format!("{{{prefix}}}:admitted:*"))?;
        let mut total = 0;
        for chunk in keys.chunks(SCAN_COUNT) {
            let counts: Vec<Option<u64>> = redis::cmd("MGET").arg(chunk).query(&mut conn)?;
            total += counts.into_iter().flatten().sum::<u64>();
        }
        Ok(total)
    }

    fn delete_all(&self) -> BenchResult<usize> {
        let mut conn = connect(&self.url)?;
        let keys = scan(&mut conn, &format!("{{{}}}:*", self.prefix))?;
        for chunk in keys.chunks(SCAN_COUNT) {
            redis::cmd("UNLINK").arg(chunk).exec(&mut conn)?;
        }
        Ok(keys.len())
    }
}

impl Drop for PhaseKeys {
    /// The ended tokens' `gone` markers would otherwise stay for a day in a shared Redis.
    fn drop(&mut self) {
        if let Err(error) = self.delete_all() {
            eprintln!(
                "concert-bench: could not delete the Redis keys {{{}}}:*: {error}",
                self.prefix
            );
        }
    }
}

fn connect(url: &str) -> BenchResult<redis::Connection> {
    let conn = redis::Client::open(url)?.get_connection_with_timeout(CLEANUP_TIMEOUT)?;
    conn.set_read_timeout(Some(CLEANUP_TIMEOUT))?;
    conn.set_write_timeout(Some(CLEANUP_TIMEOUT))?;
    Ok(conn)
}

/// Every key matching `pattern`, by SCAN (never KEYS, which would stall a shared server).
fn scan(conn: &mut redis::Connection, pattern: &str) -> BenchResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(conn)?;
        keys.extend(found);
        if next == 0 {
            // SCAN may return a key twice; each must count (and be deleted) once.
            keys.sort_unstable();
            keys.dedup();
            return Ok(keys);
        }
        cursor = next;
    }
}
