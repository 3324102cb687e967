//! The operator API (`/admin/*`, API.md §7): orgs, users and seating members, behind an
//! admin key. Deployment-wide: it ignores `X-Org-Slug`.

use crate::api::{Ctx, guard, views};
use crate::change::Change;
use crate::cursor;
use crate::db;
use crate::db::audit::Entry;
use crate::db::orgs::{self, Org, OrgSettings};
use crate::db::users::{self, Membership, SortField, User};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::org_settings::SettingsPatch;
use crate::http::input::{self, nullable, query_int};
use crate::http::respond;
use crate::password;
use crate::state::AppState;
use crate::status::{MemberStatus, OrgStatus};
use crate::validate;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

fn audit_admin(
    tx: &Change,
    admin: &guard::AdminCtx,
    action: &str,
    (org_id, target_type, target_id): (Option<&crate::ids::OrgId>, &str, &str),
    metadata: serde_json::Value,
) -> db::Result<()> {
    tx.audit(Entry {
        org_id,
        actor_type: "admin_key",
        actor_id: Some(&admin.key_id),
        action,
        target_type: Some(target_type),
        target_id: Some(target_id),
        ip: None,
        user_agent: None,
        metadata,
    })
}

fn limit(req: &Request) -> ApiResult<i64> {
    query_int(req, "limit", 20, 1, 100)
}

fn find_org(state: &AppState, slug: &str) -> ApiResult<Org> {
    state
        .db
        .read(|c| orgs::find_by_slug(c, slug))?
        .ok_or_else(ApiError::org_not_found)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrgRequest {
    slug: String,
    name: String,
    owner_email: Option<String>,
    settings: Option<SettingsPatch>,
    plan: Option<String>,
    app_url: Option<String>,
    logo_url: Option<String>,
}

fn plan(s: &str) -> ApiResult<String> {
    let t = s.trim();
    if t.is_empty()
        || t.len() > 64
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "plan",
            "must be 1-64 characters of letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(t.to_string())
}

pub fn create_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let body: CreateOrgRequest = input::json(req, state.config.server.max_body_bytes)?;
    validate::slug(&body.slug)?;
    let name = validate::name("name", &body.name)?;
    let mut settings = OrgSettings::default();
    if let Some(patch) = body.settings {
        patch.apply(state, &mut settings)?;
    }
    for (field, url) in [("appUrl", &body.app_url), ("logoUrl", &body.logo_url)] {
        if let Some(u) = url {
            validate::http_url(field, u)?;
        }
    }
    let owner_email = body
        .owner_email
        .as_deref()
        .map(validate::email)
        .transpose()?;
    let plan = body.plan.as_deref().map(plan).transpose()?;
    let org = Org {
        plan: plan.unwrap_or_else(|| "free".into()),
        app_url_by_operator: body.app_url.is_some(),
        app_url: body.app_url,
        logo_url: body.logo_url,
        settings,
        ..Org::new(body.slug, name, ctx.now)
    };
    let owner = state.change(ctx, req, |tx| {
        orgs::insert(tx, &org).map_err(|e| {
            if e.is_conflict() {
                ApiError::already_exists(format!("An organization with slug '{}' exists", org.slug))
            } else {
                e.into()
            }
        })?;
        let mut owner = None;
        if let Some(email) = &owner_email {
            let user = users::find_by_email(tx, email)?.ok_or_else(|| {
                ApiError::field(
                    ErrorCode::InvalidRequest,
                    "ownerEmail",
                    "no user has this email; create the user first (POST /admin/users)",
                )
            })?;
            let m = Membership {
                id: crate::ids::new_id("mem", ctx.now),
                org_id: org.id.clone(),
                user_id: user.id.clone(),
                role: crate::role::Role::Owner.as_str().into(),
                status: MemberStatus::Active,
                metadata: json!({}),
                joined_at: ctx.now,
            };
            users::insert_membership(tx, &m)?;
            owner = Some(views::member(&m, &user));
        }
        audit_admin(
            tx,
            &admin,
            "org.created",
            (Some(&org.id), "org", &org.id),
            json!({ "slug": org.slug }),
        )?;
        Ok::<_, ApiError>(owner)
    })?;
    let mut data = json!({ "org": views::org(&org) });
    if let Some(o) = owner {
        data["owner"] = o;
    }
    Ok(respond::created(data))
}

pub fn list_orgs(state: &AppState, _ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::admin(state, req)?;
    let limit = limit(req)?;
    let after = cursor::from_query(&state.cursor_key, req)?;
    let mut rows = state.db.read(|c| {
        orgs::list(
            c,
            after.as_ref().map(|(at, id)| (*at, id.as_str())),
            limit + 1,
        )
    })?;
    let next = cursor::next_page(&state.cursor_key, &mut rows, limit, |o| {
        (o.created_at, &o.id)
    });
    let list: Vec<_> = rows.iter().map(views::org).collect();
    Ok(respond::ok(json!({ "orgs": list, "nextCursor": next })))
}

pub fn get_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::admin(state, req)?;
    let org = find_org(state, ctx.param("slug"))?;
    Ok(respond::ok(json!({ "org": views::org(&org) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateOrgRequest {
    name: Option<String>,
    plan: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    app_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    logo_url: Option<Option<String>>,
    settings: Option<SettingsPatch>,
}

pub fn update_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let body: UpdateOrgRequest = input::json(req, state.config.server.max_body_bytes)?;
    let slug = ctx.param("slug").to_string();
    let org = state.change(ctx, req, |tx| {
        let mut org = orgs::find_by_slug(tx, &slug)?.ok_or_else(ApiError::org_not_found)?;
        if let Some(n) = &body.name {
            org.name = validate::name("name", n)?;
        }
        if let Some(p) = &body.plan {
            org.plan = plan(p)?;
        }
        if let Some(s) = &body.status {
            org.status = OrgStatus::parse(s).ok_or_else(|| {
                ApiError::field(
                    ErrorCode::InvalidRequest,
                    "status",
                    "must be 'active' or 'suspended'",
                )
            })?;
        }
        if let Some(u) = body.app_url {
            if let Some(u) = &u {
                validate::http_url("appUrl", u)?;
            }
            org.app_url_by_operator = u.is_some();
            org.app_url = u;
        }
        if let Some(u) = body.logo_url {
            if let Some(u) = &u {
                validate::http_url("logoUrl", u)?;
            }
            org.logo_url = u;
        }
        if let Some(patch) = body.settings {
            patch.apply(state, &mut org.settings)?;
        }
        org.updated_at = ctx.now;
        orgs::update(tx, &org)?;
        audit_admin(
            tx,
            &admin,
            "org.updated",
            (Some(&org.id), "org", &org.id),
            json!({}),
        )?;
        Ok::<_, ApiError>(org)
    })?;
    Ok(respond::ok(json!({ "org": views::org(&org) })))
}

pub fn delete_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let slug = ctx.param("slug").to_string();
    state.change(ctx, req, |tx| {
        let org = orgs::find_by_slug(tx, &slug)?.ok_or_else(ApiError::org_not_found)?;
        orgs::soft_delete(tx, &org.id, ctx.now)?;
        audit_admin(
            tx,
            &admin,
            "org.deleted",
            (Some(&org.id), "org", &org.id),
            json!({ "slug": org.slug }),
        )?;
        Ok::<_, ApiError>(())
    })?;
    Ok(respond::ok(json!({ "message": "Organization deleted" })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMemberRequest {
    user_id: crate::ids::UserId,
    role: String,
}

pub fn add_member(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let body: AddMemberRequest = input::json(req, state.config.server.max_body_bytes)?;
    validate::org_role("role", &body.role)?;
    let slug = ctx.param("slug").to_string();
    let member = state.change(ctx, req, |tx| {
        let org = orgs::find_by_slug(tx, &slug)?.ok_or_else(ApiError::org_not_found)?;
        let user = users::find_by_id(tx, &body.user_id)?
            .ok_or_else(|| ApiError::not_found("User not found"))?;
        // Check-then-insert under SQLite's single writer (the UNIQUE (org_id, user_id) index
        // is the backstop a second backend would rely on).
        if users::find_membership(tx, &org.id, &user.id)?.is_some() {
            return Err(ApiError::of(ErrorCode::AlreadyMember)
                .with_message("The user is already a member of this organization"));
        }
        let m = Membership {
            id: crate::ids::new_id("mem", ctx.now),
            org_id: org.id.clone(),
            user_id: user.id.clone(),
            role: body.role.clone(),
            status: MemberStatus::Active,
            metadata: json!({}),
            joined_at: ctx.now,
        };
        users::insert_membership(tx, &m)?;
        audit_admin(
            tx,
            &admin,
            "member.added",
            (Some(&org.id), "user", &user.id),
            json!({ "role": m.role }),
        )?;
        Ok(views::member(&m, &user))
    })?;
    Ok(respond::created(json!({ "member": member })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    email: String,
    password: Option<String>,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    is_email_verified: Option<bool>,
    role: Option<String>,
}

pub fn create_user(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let admin = guard::admin(state, req)?;
    let body: CreateUserRequest = input::json(req, state.config.server.max_body_bytes)?;
    let email = validate::email(&body.email)?;
    let role = body.role.unwrap_or_else(|| "user".into());
    if role != "user" && role != "admin" {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "role",
            "must be 'user' or 'admin'",
        ));
    }
    let opt_name = |field: &str, v: &Option<String>| {
        v.as_deref().map(|n| validate::name(field, n)).transpose()
    };
    let name = opt_name("name", &body.name)?;
    let first_name = opt_name("firstName", &body.first_name)?;
    let last_name = opt_name("lastName", &body.last_name)?;
    let password_hash = match &body.password {
        Some(p) => {
            password::check_policy(&state.config.password, None, "password", p)?;
            Some(state.hasher.hash(p)?)
        }
        None => None,
    };
    let user = User {
        email_verified: body.is_email_verified.unwrap_or(false),
        password_hash,
        name,
        first_name,
        last_name,
        role,
        ..User::new(email, ctx.now)
    };
    state.change(ctx, req, |tx| {
        users::insert(tx, &user).map_err(|e| {
            if e.is_conflict() {
                ApiError::already_exists("A user with this email already exists")
            } else {
                e.into()
            }
        })?;
        audit_admin(
            tx,
            &admin,
            "user.created",
            (None, "user", &user.id),
            json!({}),
        )?;
        Ok::<_, ApiError>(())
    })?;
    Ok(respond::created(json!({ "user": views::user(&user) })))
}

pub fn list_users(state: &AppState, _ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    guard::admin(state, req)?;
    let offset = query_int(req, "offset", 0, 0, i64::MAX / 2)?;
    let limit = limit(req)?;
    let (sort, sort_name) = match input::query(req, "sortField").as_deref() {
        None | Some("createdAt") => (SortField::CreatedAt, "createdAt"),
        Some("email") => (SortField::Email, "email"),
        Some("name") => (SortField::Name, "name"),
        Some(_) => {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "sortField",
                "must be createdAt, email or name",
            ));
        }
    };
    let descending = match input::query(req, "sortDir").as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "sortDir",
                "must be asc or desc",
            ));
        }
    };
    let q = input::query(req, "query").filter(|q| !q.trim().is_empty());
    if q.as_ref().is_some_and(|q| q.len() > 200) {
        return Err(ApiError::field(
            ErrorCode::InvalidRequest,
            "query",
            "at most 200 characters",
        ));
    }
    let (rows, total) = state.db.read(|c| {
        users::search(
            c,
            q.as_deref().map(str::trim),
            sort,
            descending,
            offset,
            limit,
        )
    })?;
    let list: Vec<_> = rows.iter().map(views::user).collect();
    Ok(respond::ok(json!({
        "list": list,
        "total": total,
        "offset": offset,
        "limit": limit,
        "sortField": sort_name,
        "sortDir": if descending { "desc" } else { "asc" },
    })))
}
