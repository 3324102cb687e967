//! Wire shapes of the contract's objects (API.md §3–§7): camelCase, RFC 3339 times.

use crate::clock::rfc3339;
use crate::db::orgs::Org;
use crate::db::users::{Membership, User};
use serde_json::{Value, json};

fn time(ms: Option<i64>) -> Value {
    ms.map(|t| Value::String(rfc3339(t))).unwrap_or(Value::Null)
}

pub fn user(u: &User) -> Value {
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

pub fn org(o: &Org) -> Value {
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

pub fn membership(m: &Membership) -> Value {
    json!({
        "id": m.id,
        "role": m.role,
        "status": m.status,
        "joinedAt": rfc3339(m.joined_at),
        "metadata": m.metadata,
    })
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
