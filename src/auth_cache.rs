//! Token -> user id, remembered after the first lookup. Tokens never change owner and users are
//! never deleted, so a remembered answer stays true; the cache only saves the query that would
//! otherwise start every authenticated request.

use std::collections::HashMap;
use std::sync::RwLock;

/// Entries kept before the cache starts over (a bound on memory, not an eviction policy).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct TokenCache {
    users: RwLock<HashMap<String, i64>>,
}

impl TokenCache {
    pub fn get(&self, token: &str) -> Option<i64> {
        self.users.read().ok()?.get(token).copied()
    }

    pub fn remember(&self, token: &str, user_id: i64) {
        if let Ok(mut users) = self.users.write() {
            if users.len() >= MAX_ENTRIES {
                users.clear();
            }
            users.insert(token.to_owned(), user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_stays_bounded() {
        let cache = TokenCache::default();
        assert_eq!(cache.get("a"), None);
        cache.remember("a", 1);
        assert_eq!(cache.get("a"), Some(1));
        for i in 0..MAX_ENTRIES as i64 {
            cache.remember(&format!("t{i}"), i);
        }
        assert!(cache.users.read().unwrap().len() <= MAX_ENTRIES);
    }
}
