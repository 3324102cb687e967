//! `/user_management/organization_memberships…`: a WorkOS organization membership is a
//! Latchkey membership (`inactive` = deactivated); role slugs `member`, `admin`, `owner`. The
//! last active owner is kept as everywhere else.

use super::{WError, WResult, body, list, membership_obj, no_content, ok, role_of_slug, run};
use crate::api::Ctx;
use crate::db::Tx;
use crate::db::members;
use crate::db::orgs::{self, Org};
use crate::db::users::{self, Membership, User};
use crate::db::workos as store;
use crate::error::ApiResult;
use crate::ids::{OrgId, UserId};
use crate::state::AppState;
use crate::status::MemberStatus;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::json;

fn find(conn: &Tx, id: &str) -> WResult<(Membership, User, Org)> {
    store::membership_by_id(conn, id)?
        .ok_or_else(|| WError::not_found("OrganizationMembership", id))
}

pub fn list_memberships(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let q = |k: &str| crate::http::input::query(req, k).filter(|v| !v.is_empty());
        let user = q("user_id").map(UserId::from_wire);
        let org = q("organization_id").map(OrgId::from_wire);
        if user.is_none() && org.is_none() {
            return Err(WError::invalid(
                "user_id",
                "user_id or organization_id is required",
            ));
        }
        // `statuses=active,inactive` (comma-joined); repeated keys too.
        let mut statuses = Vec::new();
        for (k, v) in url::form_urlencoded::parse(req.raw_query_string().as_bytes()) {
            if k == "statuses" || k == "statuses[]" {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    statuses.push(match s {
                        "active" => "active".to_string(),
                        "inactive" => "deactivated".to_string(),
                        "pending" => continue,
                        _ => {
                            return Err(WError::invalid("statuses", "active, inactive or pending"));
                        }
                    });
                }
            }
        }
        state.db.read(|c| {
            list(
                req,
                |page| {
                    Ok(store::list_memberships(
                        c,
                        user.as_ref(),
                        org.as_ref(),
                        &statuses,
                        page,
                    )?)
                },
                |(m, _, _): &(Membership, User, Org)| m.id.clone(),
                |(m, u, o)| membership_obj(c, m, u, o),
            )
        })
    })
}

#[derive(Deserialize)]
pub struct CreateMembership {
    user_id: String,
    organization_id: String,
    role_slug: Option<String>,
    role_slugs: Option<Vec<String>>,
}

fn one_role(
    slug: &Option<String>,
    slugs: &Option<Vec<String>>,
) -> WResult<Option<crate::role::Role>> {
    match (slug, slugs) {
        (Some(s), _) => Ok(Some(role_of_slug(s)?)),
        (None, Some(v)) if v.len() == 1 => Ok(Some(role_of_slug(&v[0])?)),
        (None, Some(v)) if v.is_empty() => Ok(None),
        (None, Some(_)) => Err(WError::invalid(
            "role_slugs",
            "Latchkey gives a member one role",
        )),
        (None, None) => Ok(None),
    }
}

pub fn create_membership(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: CreateMembership = body(state, req)?;
        let role = one_role(&b.role_slug, &b.role_slugs)?.unwrap_or(crate::role::Role::Member);
        let (user, org) = state.db.read(|c| {
            let u = users::find_by_id(c, &UserId::from_wire(b.user_id.as_str()))?
                .ok_or_else(|| WError::not_found("User", &b.user_id))?;
            let o = orgs::find_by_id(c, &OrgId::from_wire(b.organization_id.as_str()))?
                .ok_or_else(|| WError::not_found("Organization", &b.organization_id))?;
            Ok::<_, WError>((u, o))
        })?;
        let m = Membership {
            id: crate::ids::new_id("mem", ctx.now),
            org_id: org.id.clone(),
            user_id: user.id.clone(),
            role: role.as_str().to_string(),
            status: MemberStatus::Active,
            metadata: json!({}),
            joined_at: ctx.now,
        };
        state
            .change(ctx, req, |tx| {
                // Check-then-insert under SQLite's single writer; the UNIQUE (org_id, user_id)
                // index is the backstop.
                if users::find_membership(tx, &org.id, &user.id)?.is_some() {
                    return Err(crate::error::ApiError::of(
                        crate::error::ErrorCode::AlreadyMember,
                    ));
                }
                users::insert_membership(tx, &m)?;
                tx.emit(
                    Some(&org),
                    "member.joined",
                    json!({ "member": crate::api::views::member(&m, &user) }),
                )?;
                Ok(())
            })
            .map_err(|e| {
                let mut w = WError::from(e);
                if w.status == 409 {
                    w.message = "The user is already a member of this organization".into();
                }
                w
            })?;
        Ok(ok(&state
            .db
            .read(|c| membership_obj(c, &m, &user, &org))?))
    })
}

pub fn get_membership(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        state.db.read(|c| {
            let (m, u, o) = find(c, ctx.param("id"))?;
            Ok(ok(&membership_obj(c, &m, &u, &o)?))
        })
    })
}

#[derive(Deserialize)]
pub struct UpdateMembership {
    role_slug: Option<String>,
    role_slugs: Option<Vec<String>>,
}

/// The last active owner stays: neither demoted, deactivated nor removed.
fn keep_an_owner(tx: &Tx, m: &Membership, what: &str) -> WResult<()> {
    // Relies on SQLite's single writer, as `api::org::keep_an_owner` does.
    if m.is_active_owner() && members::active_owner_count(tx, &m.org_id)? <= 1 {
        return Err(WError::new(
            403,
            "forbidden",
            format!("The last owner cannot be {what}"),
        ));
    }
    Ok(())
}

pub fn update_membership(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: UpdateMembership = body(state, req)?;
        let role = one_role(&b.role_slug, &b.role_slugs)?;
        change(state, ctx, req, |tx, m| {
            if let Some(r) = role {
                if r != crate::role::Role::Owner {
                    keep_an_owner(tx, m, "demoted")?;
                }
                m.role = r.as_str().to_string();
            }
            Ok("member.role_changed")
        })
    })
}

pub fn deactivate(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        change(state, ctx, req, |tx, m| {
            keep_an_owner(tx, m, "deactivated")?;
            m.status = MemberStatus::Deactivated;
            Ok("member.deactivated")
        })
    })
}

pub fn reactivate(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        change(state, ctx, req, |_, m| {
            m.status = MemberStatus::Active;
            Ok("member.reactivated")
        })
    })
}

/// Loads the membership, applies `f`, writes it and announces `f`'s event.
fn change(
    state: &AppState,
    ctx: &Ctx,
    req: &Request,
    f: impl FnOnce(&Tx, &mut Membership) -> WResult<&'static str>,
) -> WResult<Response> {
    let mut failure = None;
    let out = state.change(ctx, req, |tx| {
        let (mut m, u, o) = match find(tx, ctx.param("id")) {
            Ok(x) => x,
            Err(e) => {
                failure = Some(e);
                return Ok(None);
            }
        };
        let before = m.clone();
        let event = match f(tx, &mut m) {
            Ok(ev) => ev,
            Err(e) => {
                failure = Some(e);
                return Ok(None);
            }
        };
        if m.role != before.role || m.status != before.status {
            members::update(tx, &o.id, &m, ctx.now)?;
            if m.status == MemberStatus::Deactivated && before.status == MemberStatus::Active {
                let ended = crate::db::sessions::revoke_in_org(
                    tx,
                    &o.id,
                    &u.id,
                    "member_deactivated",
                    ctx.now,
                )?;
                let ended: Vec<_> = ended.into_iter().map(|s| (s, o.id.clone())).collect();
                tx.sessions_revoked(
                    &ended,
                    crate::events::who(&u.id, &u.email),
                    "member_deactivated",
                )?;
            }
            tx.emit(
                Some(&o),
                event,
                json!({ "member": crate::api::views::member(&m, &u) }),
            )?;
        }
        Ok(Some((m, u, o)))
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let (m, u, o) = out.expect("no failure");
    Ok(ok(&state.db.read(|c| membership_obj(c, &m, &u, &o))?))
}

pub fn delete_membership(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let mut failure = None;
        state.change(ctx, req, |tx| {
            let (m, u, o) = match find(tx, ctx.param("id")) {
                Ok(x) => x,
                Err(e) => {
                    failure = Some(e);
                    return Ok(());
                }
            };
            if let Err(e) = keep_an_owner(tx, &m, "removed") {
                failure = Some(e);
                return Ok(());
            }
            let ended =
                crate::db::sessions::revoke_in_org(tx, &o.id, &u.id, "member_removed", ctx.now)?;
            let ended: Vec<_> = ended.into_iter().map(|s| (s, o.id.clone())).collect();
            tx.sessions_revoked(
                &ended,
                crate::events::who(&u.id, &u.email),
                "member_removed",
            )?;
            members::delete(tx, &o.id, &u.id)?;
            tx.emit(
                Some(&o),
                "member.removed",
                json!({ "member": crate::api::views::member(&m, &u) }),
            )?;
            Ok(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(no_content())
    })
}
