//! The states a stored row can be in, as enums: a typo in a status is a compile error, and a
//! `match` names every case. Stored and sent as the lower-case words the API documents
//! (`db::ids` maps them to TEXT).

macro_rules! status {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the order the API lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and wire form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value a stored or wire word names, if any.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status!(
    /// An account, deployment-wide: a disabled one cannot sign in anywhere.
    UserStatus {
        Active = "active",
        Disabled = "disabled",
    }
);

status!(
    /// A membership: a deactivated member keeps the row but passes no org check.
    MemberStatus {
        Active = "active",
        Deactivated = "deactivated",
    }
);

status!(
    /// An organization: a suspended one signs nobody in.
    OrgStatus {
        Active = "active",
        Suspended = "suspended",
    }
);

status!(
    /// An invitation. `Expired` is never stored: a pending invitation past its expiry reads
    /// as expired (`Invitation::effective_state`).
    InvitationState {
        Pending = "pending",
        Accepted = "accepted",
        Declined = "declined",
        Revoked = "revoked",
        Expired = "expired",
    }
);

status!(
    /// A hosted-pages browser session: signed in, or password checked and the second factor
    /// due.
    BrowserState {
        Active = "active",
        PendingSecondFactor = "pending_2fa",
    }
);
