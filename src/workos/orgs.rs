//! `/organizations…` (WorkOS Organizations): CRUD with domains, `external_id` and `metadata`.
//! A WorkOS organization is a Latchkey org; its slug is made from its name.

use super::{WError, WResult, body, list, no_content, ok, org_obj, run};
use crate::api::Ctx;
use crate::db::Tx;
use crate::db::orgs::{self, Org};
use crate::db::workos as store;
use crate::error::ApiResult;
use crate::ids::OrgId;
use crate::state::AppState;
use rouille::{Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};

fn find(conn: &Tx, id: &str) -> WResult<Org> {
    orgs::find_by_id(conn, &OrgId::from_wire(id))?
        .ok_or_else(|| WError::not_found("Organization", id))
}

/// A free slug for `name`: its letters and digits, dashed, with a suffix when taken.
fn slug_for(conn: &Tx, name: &str) -> WResult<String> {
    let mut base: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    let mut base = base.trim_matches('-').to_string();
    if base.len() < 3 || crate::validate::slug(&base).is_err() {
        base = format!("org-{}", base);
    }
    base.truncate(48);
    let base = base.trim_matches('-').to_string();
    for i in 0..50 {
        let candidate = if i == 0 {
            base.clone()
        } else {
            format!("{base}-{}", crate::crypto::random_hex(2))
        };
        if crate::validate::slug(&candidate).is_ok()
            && orgs::find_by_slug(conn, &candidate)?.is_none()
        {
            return Ok(candidate);
        }
    }
    Err(WError::new(409, "conflict", "No free slug for this name"))
}

#[derive(Deserialize)]
pub struct DomainData {
    domain: String,
    state: Option<String>,
}

#[derive(Deserialize)]
pub struct OrgBody {
    name: Option<String>,
    domain_data: Option<Vec<DomainData>>,
    domains: Option<Vec<String>>,
    external_id: Option<String>,
    metadata: Option<Value>,
}

fn domains_of(b: &OrgBody) -> WResult<Option<Vec<(String, String)>>> {
    let mut out = Vec::new();
    match (&b.domain_data, &b.domains) {
        (Some(dd), _) => {
            for d in dd {
                let state = d.state.clone().unwrap_or_else(|| "verified".into());
                if !["verified", "pending"].contains(&state.as_str()) {
                    return Err(WError::invalid(
                        "domain_data.state",
                        "must be verified or pending",
                    ));
                }
                out.push((domain(&d.domain)?, state));
            }
        }
        (None, Some(ds)) => {
            for d in ds {
                out.push((domain(d)?, "verified".to_string()));
            }
        }
        (None, None) => return Ok(None),
    }
    if out.len() > 50 {
        return Err(WError::invalid("domain_data", "at most 50 domains"));
    }
    Ok(Some(out))
}

fn domain(d: &str) -> WResult<String> {
    let d = d.trim().to_ascii_lowercase();
    let ok = d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(d)
    } else {
        Err(WError::invalid("domain_data.domain", "not a domain name"))
    }
}

fn conflict_or(e: crate::db::Error, what: &str) -> crate::error::ApiError {
    if e.is_conflict() {
        crate::error::ApiError::already_exists(format!("{what} already exists"))
    } else {
        e.into()
    }
}

pub fn list_orgs(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        // Python sends `domains=a&domains=b`, Node `domains=a,b`.
        let raw = req.raw_query_string();
        let mut domains = Vec::new();
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            if k == "domains" || k == "domains[]" {
                for d in v.split(',').filter(|d| !d.is_empty()) {
                    domains.push(d.trim().to_ascii_lowercase());
                }
            }
        }
        domains.truncate(50);
        let search =
            crate::http::input::query(req, "search").filter(|s| !s.is_empty() && s.len() <= 200);
        state.db.read(|c| {
            list(
                req,
                |page| Ok(store::list_orgs(c, &domains, search.as_deref(), page)?),
                |o: &Org| o.id.to_string(),
                |o| org_obj(c, o),
            )
        })
    })
}

pub fn create_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |env| {
        let b: OrgBody = body(state, req)?;
        let name = crate::validate::name("name", b.name.as_deref().unwrap_or(""))?;
        let domains = domains_of(&b)?.unwrap_or_default();
        let metadata = b.metadata.clone().unwrap_or_else(|| json!({}));
        if !metadata.is_object() {
            return Err(WError::invalid("metadata", "must be an object"));
        }
        let org = state.change(ctx, req, |tx| {
            let slug = slug_for(tx, &name)
                .map_err(|e| crate::error::ApiError::already_exists(e.message))?;
            let org = Org::new(slug, name.clone(), ctx.now);
            orgs::insert(tx, &org).map_err(|e| conflict_or(e, "An organization with this slug"))?;
            store::set_org_extras(tx, &org.id, b.external_id.as_deref(), &metadata)
                .map_err(|e| conflict_or(e, "An organization with this external_id"))?;
            store::set_domains(tx, &org.id, &domains, ctx.now)?;
            tx.audit(crate::db::audit::Entry::new(
                Some(&org.id),
                "api_key",
                Some(&env.client.id),
                "org.created",
                Some("org"),
                Some(&org.id),
            ))?;
            Ok(org)
        })?;
        Ok(ok(&state.db.read(|c| org_obj(c, &org))?))
    })
}

pub fn get_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        state.db.read(|c| {
            let o = find(c, ctx.param("id"))?;
            Ok(ok(&org_obj(c, &o)?))
        })
    })
}

pub fn get_org_by_external_id(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let eid = ctx.param("externalId");
        state.db.read(|c| {
            let o = store::org_by_external_id(c, eid)?
                .ok_or_else(|| WError::not_found("Organization", eid))?;
            Ok(ok(&org_obj(c, &o)?))
        })
    })
}

pub fn update_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let b: OrgBody = body(state, req)?;
        let mut org = state.db.read(|c| find(c, ctx.param("id")))?;
        if let Some(n) = &b.name {
            org.name = crate::validate::name("name", n)?;
        }
        let domains = domains_of(&b)?;
        if b.metadata.as_ref().is_some_and(|m| !m.is_object()) {
            return Err(WError::invalid("metadata", "must be an object"));
        }
        org.updated_at = ctx.now;
        state.change(ctx, req, |tx| {
            orgs::update(tx, &org)?;
            let (old_eid, old_meta) = store::org_extras(tx, &org.id)?;
            store::set_org_extras(
                tx,
                &org.id,
                b.external_id.as_deref().or(old_eid.as_deref()),
                b.metadata.as_ref().unwrap_or(&old_meta),
            )
            .map_err(|e| conflict_or(e, "An organization with this external_id"))?;
            if let Some(d) = &domains {
                store::set_domains(tx, &org.id, d, ctx.now)?;
            }
            tx.emit(
                Some(&org),
                "org.updated",
                json!({ "org": crate::api::views::org(&org) }),
            )?;
            Ok(())
        })?;
        Ok(ok(&state.db.read(|c| org_obj(c, &org))?))
    })
}

pub fn delete_org(state: &AppState, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    run(state, ctx, req, |_env| {
        let org = state.db.read(|c| find(c, ctx.param("id")))?;
        state.change(ctx, req, |tx| {
            tx.emit(
                Some(&org),
                "org.deleted",
                json!({ "org": { "id": org.id, "slug": org.slug, "name": org.name } }),
            )?;
            orgs::soft_delete(tx, &org.id, ctx.now)?;
            Ok(())
        })?;
        Ok(no_content())
    })
}
