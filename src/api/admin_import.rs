//! `POST /api/v1/admin/users/import` (API.md §14, docs/api.md "Importing password hashes"):
//! the operator brings accounts from another system with their password hashes, up to 1,000
//! a call. Only an admin key may: a tenant must never set an account's password.
//!
//! A request that is wrong anywhere — shape, an email, a name, a role, a hash that does not
//! parse for its declared type or exceeds its cost bounds — is refused whole with a 400 naming
//! the field (`users[3].passwordHash`), before anything is written. A well-formed request is
//! imported in one transaction with a result per row: an email already taken (also earlier in
//! the same request) or an unknown `orgSlug` fails that row only; the others are created.

use crate::api::{Ctx, guard};
use crate::db::audit::Entry;
use crate::db::orgs::{self, Org};
use crate::db::users::{self, Membership, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::input;
use crate::http::respond;
use crate::password::import::validate_import_as;
use crate::role::Role;
use crate::state::AppState;
use crate::status::MemberStatus;
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Rows per call: enough for a migration script's batches, few enough that one write
/// transaction stays short (no password is hashed here; hashes are only parsed).
pub const MAX_ROWS: usize = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRequest {
    users: Vec<ImportUser>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportUser {
    email: String,
    password_hash: String,
    password_hash_type: String,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email_verified: Option<bool>,
    org_slug: Option<String>,
    role: Option<String>,
}

/// A row that passed validation: the account to create and where to seat it.
struct Row {
    user: User,
    org: Option<(String, Role)>,
}

/// `e` (a 400 naming `field`) renamed to `users[i].field`.
fn at(i: usize, e: ApiError) -> ApiError {
    match e.errors.first() {
        Some(fe) => ApiError::field(e.code, &format!("users[{i}].{}", fe.field), &fe.message),
        None => e,
    }
}

fn row(i: usize, u: ImportUser, now: i64) -> ApiResult<Row> {
    let field = |f: &str| format!("users[{i}].{f}");
    let email = validate::email(&u.email).map_err(|e| at(i, e))?;
    let hash = validate_import_as(
        &u.password_hash,
        &u.password_hash_type,
        &field("passwordHash"),
        &field("passwordHashType"),
    )?;
    let opt_name = |f: &str, v: &Option<String>| {
        v.as_deref()
            .map(|n| validate::name(&field(f), n))
            .transpose()
    };
    let org = match (u.org_slug, u.role) {
        (Some(slug), role) => {
            let role = match role.as_deref() {
                None => Role::Member,
                Some(r) => Role::parse(r).ok_or_else(|| {
                    ApiError::field(
                        ErrorCode::InvalidRequest,
                        &field("role"),
                        "must be one of owner, org_admin, member",
                    )
                })?,
            };
            Some((slug, role))
        }
        (None, Some(_)) => {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                &field("role"),
                "is the role in orgSlug's organization; give orgSlug too",
            ));
        }
        (None, None) => None,
    };
    let user = User {
        email_verified: u.email_verified.unwrap_or(false),
        password_hash: Some(hash),
        name: opt_name("name", &u.name)?,
        first_name: opt_name("firstName", &u.first_name)?,
        last_name: opt_name("lastName", &u.last_name)?,
        ..User::new(email, now)
    };
    Ok(Row { user, org })
}

fn row_error(email: &str, code: ErrorCode, message: &str) -> Value {
    json!({ "email": email, "error": { "code": code.as_str(), "message": message } })
}

pub fn import_users(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let body: ImportRequest = input::json(req, state.config.server.max_body_bytes)?;
    if body.users.is_empty() || body.users.len() > MAX_ROWS {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "users",
            format!("must hold 1 to {MAX_ROWS} users"),
        ));
    }
    let rows = body
        .users
        .into_iter()
        .enumerate()
        .map(|(i, u)| row(i, u, ctx.now))
        .collect::<ApiResult<Vec<Row>>>()?;

    let (imported, results) = state.change(ctx, req, |tx| {
        let mut orgs_by_slug: HashMap<String, Option<Org>> = HashMap::new();
        let mut results = Vec::with_capacity(rows.len());
        let mut imported: Vec<&str> = Vec::new();
        for r in &rows {
            let email = r.user.email.as_str();
            let org = match &r.org {
                None => None,
                Some((slug, role)) => {
                    if !orgs_by_slug.contains_key(slug) {
                        orgs_by_slug.insert(slug.clone(), orgs::find_by_slug(tx, slug)?);
                    }
                    match &orgs_by_slug[slug] {
                        Some(org) => Some((org, *role)),
                        None => {
                            results.push(row_error(
                                email,
                                ErrorCode::OrgNotFound,
                                "No organization has this orgSlug",
                            ));
                            continue;
                        }
                    }
                }
            };
            // A failed INSERT undoes only itself; the transaction goes on with the next row.
            match users::insert(tx, &r.user) {
                Err(e) if e.is_conflict() => {
                    results.push(row_error(
                        email,
                        ErrorCode::AlreadyExists,
                        "A user with this email already exists",
                    ));
                    continue;
                }
                other => other?,
            }
            if let Some((org, role)) = org {
                users::insert_membership(
                    tx,
                    &Membership {
                        id: crate::ids::new_id("mem", ctx.now),
                        org_id: org.id.clone(),
                        user_id: r.user.id.clone(),
                        role: role.as_str().to_string(),
                        status: MemberStatus::Active,
                        metadata: json!({}),
                        joined_at: ctx.now,
                    },
                )?;
            }
            imported.push(r.user.id.as_str());
            results.push(json!({ "email": email, "id": r.user.id }));
        }
        tx.audit(Entry {
            org_id: None,
            actor_type: "admin_key",
            actor_id: Some(&admin.key_id),
            action: "users.imported",
            target_type: Some("user"),
            target_id: None,
            ip: None,
            user_agent: None,
            metadata: json!({
                "imported": imported.len(),
                "failed": rows.len() - imported.len(),
                "userIds": imported,
            }),
        })?;
        Ok::<_, ApiError>((imported.len(), results))
    })?;
    Ok(respond::ok(
        json!({ "imported": imported, "results": results }),
    ))
}
