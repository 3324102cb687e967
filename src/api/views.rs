//! Wire shapes of the contract's objects (API.md §3–§7): camelCase, RFC 3339 times.

use crate::clock::{Rfc3339, rfc3339};
use crate::db::orgs::Org;
use crate::db::users::{Membership, User};
use crate::ids::{OrgId, SessionId, UserId};
use crate::status::{MemberStatus, OrgStatus};
use crate::tokens::AccessClaims;
use serde::Serialize;
use serde_json::{Value, json};

/// A user as every answer shows it. The views are written straight into an answer (no
/// `serde_json::Value` in between, which costs an allocation per key and per string); their
/// fields are in the sorted order a `Value`'s map writes, so both give the same bytes (unit
/// test below).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView<'a> {
    avatar_url: Option<&'a str>,
    created_at: Rfc3339,
    email: &'a str,
    first_name: Option<&'a str>,
    id: &'a UserId,
    is_email_verified: bool,
    last_login_at: Option<Rfc3339>,
    last_name: Option<&'a str>,
    name: Option<&'a str>,
    phone_number: Option<&'a str>,
    role: &'a str,
    two_factor_enabled: bool,
    updated_at: Rfc3339,
}

impl<'a> UserView<'a> {
    pub fn of(u: &'a User) -> Self {
        UserView {
            avatar_url: u.avatar_url.as_deref(),
            created_at: Rfc3339(u.created_at),
            email: &u.email,
            first_name: u.first_name.as_deref(),
            id: &u.id,
            is_email_verified: u.email_verified,
            last_login_at: u.last_login_at.map(Rfc3339),
            last_name: u.last_name.as_deref(),
            name: u.name.as_deref(),
            phone_number: u.phone_number.as_deref(),
            role: &u.role,
            two_factor_enabled: u.two_factor_enabled,
            updated_at: Rfc3339(u.updated_at),
        }
    }
}

/// An org as every answer shows it (see [`UserView`]). `settings` goes through a `Value`, so
/// its keys are sorted as before.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgView<'a> {
    app_url: Option<&'a str>,
    created_at: Rfc3339,
    id: &'a OrgId,
    logo_url: Option<&'a str>,
    name: &'a str,
    plan: &'a str,
    settings: Value,
    slug: &'a str,
    status: &'a OrgStatus,
    updated_at: Rfc3339,
}

impl<'a> OrgView<'a> {
    pub fn of(o: &'a Org) -> Self {
        OrgView {
            app_url: o.app_url.as_deref(),
            created_at: Rfc3339(o.created_at),
            id: &o.id,
            logo_url: o.logo_url.as_deref(),
            name: &o.name,
            plan: &o.plan,
            settings: serde_json::to_value(&o.settings).unwrap_or(Value::Null),
            slug: &o.slug,
            status: &o.status,
            updated_at: Rfc3339(o.updated_at),
        }
    }
}

/// A membership as every answer shows it (see [`UserView`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipView<'a> {
    id: &'a str,
    joined_at: Rfc3339,
    metadata: &'a Value,
    role: &'a str,
    status: &'a MemberStatus,
}

impl<'a> MembershipView<'a> {
    pub fn of(m: &'a Membership) -> Self {
        MembershipView {
            id: &m.id,
            joined_at: Rfc3339(m.joined_at),
            metadata: &m.metadata,
            role: &m.role,
            status: &m.status,
        }
    }
}

/// An access token's claims as `/public/verify` shows them: `AccessClaims`' own (snake_case)
/// names, in sorted order (see [`UserView`]).
#[derive(Serialize)]
pub struct ClaimsView<'a> {
    amr: &'a [String],
    aud: &'a str,
    email: &'a str,
    email_verified: bool,
    exp: i64,
    iat: i64,
    iss: &'a str,
    jti: &'a str,
    org_id: &'a OrgId,
    org_role: &'a str,
    org_slug: &'a str,
    sid: &'a SessionId,
    sub: &'a UserId,
}

impl<'a> ClaimsView<'a> {
    pub fn of(c: &'a AccessClaims) -> Self {
        // Every field by name: a claim added to `AccessClaims` fails to compile here.
        let AccessClaims {
            iss,
            sub,
            aud,
            iat,
            exp,
            jti,
            sid,
            org_id,
            org_slug,
            org_role,
            email,
            email_verified,
            amr,
        } = c;
        ClaimsView {
            amr,
            aud,
            email,
            email_verified: *email_verified,
            exp: *exp,
            iat: *iat,
            iss,
            jti,
            org_id,
            org_role,
            org_slug,
            sid,
            sub,
        }
    }
}

/// A view as a `Value`, for the answers that add to it or nest it in a `json!`.
pub(crate) fn value(view: impl Serialize) -> Value {
    // A struct of strings, numbers, options and `Value`s: `to_value` cannot fail.
    serde_json::to_value(view).unwrap_or(Value::Null)
}

pub fn user(u: &User) -> Value {
    value(UserView::of(u))
}

pub fn org(o: &Org) -> Value {
    value(OrgView::of(o))
}

pub fn membership(m: &Membership) -> Value {
    value(MembershipView::of(m))
}

/// A member as listed under `/org/members`: the user's identity with the membership.
pub fn member(m: &Membership, u: &User) -> Value {
    json!({
        "id": m.id,
        "userId": u.id,
        "name": u.name,
        "email": u.email,
        "role": m.role,
        "status": m.status,
        "joinedAt": rfc3339(m.joined_at),
        "metadata": m.metadata,
    })
}

pub fn audit_entry(e: &crate::db::audit::Row) -> Value {
    json!({
        "id": e.id,
        "orgId": e.org_id,
        "action": e.action,
        "actorType": e.actor_type,
        "actorId": e.actor_id,
        "targetType": e.target_type,
        "targetId": e.target_id,
        "ipAddress": e.ip_address,
        "userAgent": e.user_agent,
        "metadata": e.metadata,
        "createdAt": rfc3339(e.created_at),
    })
}

pub fn session(s: &crate::db::sessions::Session, org_slug: &str, current: bool) -> Value {
    json!({
        "id": s.id,
        "orgId": s.org_id,
        "orgSlug": org_slug,
        "createdAt": rfc3339(s.created_at),
        "lastSeenAt": rfc3339(s.last_seen_at),
        "expiresAt": rfc3339(s.idle_expires_at.min(s.expires_at)),
        "ipAddress": s.ip_address,
        "userAgent": s.user_agent,
        "current": current,
        "authMethods": s.auth_methods,
    })
}

/// An org and a membership for the unit tests that compare a view with the `json!` it
/// replaced; each test then sets the fields it is about.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn org() -> Org {
        Org {
            updated_at: 1,
            ..Org::new("acme".into(), "Acme".into(), 0)
        }
    }

    pub(crate) fn membership(org_id: &OrgId, user_id: &UserId) -> Membership {
        Membership {
            id: "mem_1".into(),
            org_id: org_id.clone(),
            user_id: user_id.clone(),
            role: "member".into(),
            status: MemberStatus::Active,
            metadata: json!({}),
            joined_at: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The views as they were built before, with `json!`: the typed views must write the
    /// same bytes.
    fn user_json(u: &User) -> Value {
        let time = |ms: Option<i64>| ms.map(|t| Value::String(rfc3339(t)));
        json!({
            "id": u.id,
            "email": u.email,
            "name": u.name,
            "firstName": u.first_name,
            "lastName": u.last_name,
            "avatarUrl": u.avatar_url,
            "phoneNumber": u.phone_number,
            "role": u.role,
            "isEmailVerified": u.email_verified,
            "twoFactorEnabled": u.two_factor_enabled,
            "createdAt": rfc3339(u.created_at),
            "updatedAt": rfc3339(u.updated_at),
            "lastLoginAt": time(u.last_login_at),
        })
    }

    fn org_json(o: &Org) -> Value {
        json!({
            "id": o.id,
            "slug": o.slug,
            "name": o.name,
            "plan": o.plan,
            "status": o.status,
            "appUrl": o.app_url,
            "logoUrl": o.logo_url,
            "createdAt": rfc3339(o.created_at),
            "updatedAt": rfc3339(o.updated_at),
            "settings": o.settings,
        })
    }

    fn membership_json(m: &Membership) -> Value {
        json!({
            "id": m.id,
            "role": m.role,
            "status": m.status,
            "joinedAt": rfc3339(m.joined_at),
            "metadata": m.metadata,
        })
    }

    fn bytes(v: impl Serialize) -> String {
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn the_claims_view_writes_what_the_claims_value_wrote() {
        let c = AccessClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: UserId::from_wire("usr_1"),
            aud: "latchkey".into(),
            iat: 1_764_000_000,
            exp: 1_764_000_900,
            jti: "jti\"1".into(),
            sid: SessionId::from_wire("ses_1"),
            org_id: OrgId::from_wire("org_1"),
            org_slug: "acme".into(),
            org_role: "owner".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            amr: vec!["pwd".into(), "otp".into()],
        };
        let value = serde_json::to_value(&c).unwrap();
        assert_eq!(bytes(ClaimsView::of(&c)), value.to_string());
    }

    #[test]
    fn the_typed_views_write_what_the_json_values_wrote() {
        let mut u = User::new("ada@example.com".into(), 1_764_000_000_123);
        assert_eq!(bytes(UserView::of(&u)), user_json(&u).to_string());
        u.name = Some("Ada \"Countess\" Lovelace".into());
        u.first_name = Some("Ada".into());
        u.last_name = Some("Lovelace".into());
        u.avatar_url = Some("https://example.com/a.png".into());
        u.phone_number = Some("+14155550123".into());
        u.email_verified = true;
        u.two_factor_enabled = true;
        u.last_login_at = Some(-1);
        u.updated_at = 253_402_300_799_999;
        assert_eq!(bytes(UserView::of(&u)), user_json(&u).to_string());
        assert_eq!(user(&u), user_json(&u));

        let mut o = fixtures::org();
        o.name = "Acme <Ltd>".into();
        assert_eq!(bytes(OrgView::of(&o)), org_json(&o).to_string());
        o.app_url = Some("https://app.acme.example".into());
        o.logo_url = Some("https://acme.example/logo.svg".into());
        o.settings.allowed_domains = vec!["acme.example".into()];
        assert_eq!(bytes(OrgView::of(&o)), org_json(&o).to_string());

        let mut m = fixtures::membership(&o.id, &u.id);
        m.role = "admin".into();
        m.metadata = json!({"z": 1, "a": [true, null], "m": {"y": "x"}});
        m.joined_at = 42;
        assert_eq!(
            bytes(MembershipView::of(&m)),
            membership_json(&m).to_string()
        );
    }
}
