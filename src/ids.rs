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

/// Declares a newtype id: a `String` the compiler tells apart from every other kind of id,
/// so passing a user's id where an org's is expected does not compile. Serialized as the bare
/// string; stored as TEXT (see `db::ids`). `fresh` makes a new one with the kind's prefix;
/// `from_wire` wraps an id a client sent (unchecked: an unknown id simply finds nothing).
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id of this kind, made at `now_ms` (see [`new_id`]).
            pub fn fresh(now_ms: i64) -> $name {
                $name(new_id($prefix, now_ms))
            }

            /// An id as a client or a stored row gave it.
            pub fn from_wire(s: impl Into<String>) -> $name {
                $name(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// An organization (a tenant): `org_…`.
    OrgId,
    "org"
);
id_type!(
    /// An account (deployment-wide): `usr_…`.
    UserId,
    "usr"
);
id_type!(
    /// One org session (a refresh-token family): `ses_…`.
    SessionId,
    "ses"
);

#[cfg(test)]
mod tests {
    use super::new_id;

    /// The text form: Crockford base32, 26 characters, the 48-bit time first.
    #[test]
    fn ulid_text_form() {
        let u = ulid::Ulid::from_parts(1_767_225_600_123, 0x0123_4567_89ab_cdef_fedc);
        assert_eq!(u.to_string(), "01KDVDNA3V04HMASW9NF6YZZPW");
        assert_eq!(
            ulid::Ulid(u128::MAX).to_string(),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
    }

    /// Ids made in the same millisecond still increase, and sort like their creation. (At
    /// time 1, so that the process-wide last id, which other tests share, never moves ahead.)
    #[test]
    fn ids_increase_within_a_millisecond() {
        let ids: Vec<String> = (0..100).map(|_| new_id("tst", 1)).collect();
        for id in &ids {
            let (prefix, ulid) = id.split_once('_').unwrap();
            assert_eq!(prefix, "tst");
            assert_eq!(ulid.len(), 26);
            assert!(
                ulid.bytes().all(
                    |c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"ILOU".contains(&c))
                ),
                "{id}"
            );
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
