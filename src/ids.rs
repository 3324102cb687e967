//! Identifiers: how ids are made (prefixed ULIDs, for rows and for requests alike).

/// A fresh prefixed ULID: `usr_01J…`. Strictly increasing within the process (a ULID made in
/// the same millisecond as the last one is the last one plus one), so ids order like their
/// creation and cursor pagination by (time, id) is stable.
pub fn new_id(prefix: &str, now_ms: i64) -> String {
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let fresh = ulid::Ulid::from_parts(now_ms.max(0) as u64, rand::random::<u128>()).0;
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let next = if fresh > *last { fresh } else { *last + 1 };
    *last = next;
    format!("{prefix}_{}", ulid::Ulid(next))
}
