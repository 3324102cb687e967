//! Organizations (tenants). Deleted orgs are kept (soft delete) and never returned.

use crate::db::Result;
use crate::ids::OrgId;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignupMode {
    Open,
    #[default]
    InviteOnly,
    Domain,
}

/// Per-org policy; stored as JSON in `orgs.settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgSettings {
    #[serde(default)]
    pub signup_mode: SignupMode,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default, rename = "require2FA")]
    pub require_2fa: bool,
    #[serde(default)]
    pub password_min_length: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Org {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub status: crate::status::OrgStatus,
    pub app_url: Option<String>,
    /// The operator set `app_url` (any host); an org admin may set only allowed hosts.
    pub app_url_by_operator: bool,
    pub logo_url: Option<String>,
    pub settings: OrgSettings,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Org {
    /// A new active org on the free plan with this slug and name and nothing else set yet.
    pub fn new(slug: String, name: String, now: i64) -> Org {
        Org {
            id: OrgId::fresh(now),
            slug,
            name,
            plan: "free".into(),
            status: crate::status::OrgStatus::Active,
            app_url: None,
            app_url_by_operator: false,
            logo_url: None,
            settings: OrgSettings::default(),
            created_at: now,
            updated_at: now,
        }
    }
}

const COLS: &str =
    "id, slug, name, plan, status, app_url, logo_url, settings, created_at, updated_at,
                    app_url_by_operator";

/// `COLS` of the table aliased `o`, for joins; read with [`org_at`].
pub(crate) const O_COLS: &str = "o.id, o.slug, o.name, o.plan, o.status, o.app_url, o.logo_url, \
     o.settings, o.created_at, o.updated_at, o.app_url_by_operator";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Org> {
    org_at(r, 0)
}

/// An org read from columns `COLS` (or `O_COLS`) starting at index `o`.
pub(crate) fn org_at(r: &Row<'_>, o: usize) -> rusqlite::Result<Org> {
    let settings: String = r.get(o + 7)?;
    Ok(Org {
        id: r.get(o)?,
        slug: r.get(o + 1)?,
        name: r.get(o + 2)?,
        plan: r.get(o + 3)?,
        status: r.get(o + 4)?,
        app_url: r.get(o + 5)?,
        logo_url: r.get(o + 6)?,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        created_at: r.get(o + 8)?,
        updated_at: r.get(o + 9)?,
        app_url_by_operator: r.get(o + 10)?,
    })
}

pub fn insert(conn: &Connection, org: &Org) -> Result<()> {
    conn.execute(
        "INSERT INTO orgs (id, slug, name, plan, status, app_url, logo_url, settings, created_at, updated_at,
                           app_url_by_operator)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            org.id,
            org.slug,
            org.name,
            org.plan,
            org.status,
            org.app_url,
            org.logo_url,
            serde_json::to_string(&org.settings).unwrap_or_else(|_| "{}".into()),
            org.created_at,
            org.updated_at,
            org.app_url_by_operator
        ],
    )?;
    Ok(())
}

pub fn find_by_slug(conn: &Connection, slug: &str) -> Result<Option<Org>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM orgs WHERE slug = ?1 AND deleted_at IS NULL"
        ))?
        .query_row([slug], from_row)
        .optional()?)
}

pub fn find_by_id(conn: &Connection, id: &OrgId) -> Result<Option<Org>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM orgs WHERE id = ?1 AND deleted_at IS NULL"
        ))?
        .query_row([id], from_row)
        .optional()?)
}

/// Live orgs, newest first, after the (created_at, id) cursor position if given.
pub fn list(conn: &Connection, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<Org>> {
    // "~" sorts after every id character, so the first page starts at the newest row.
    let (at, id) = after.unwrap_or((i64::MAX, "~"));
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM orgs WHERE deleted_at IS NULL
           AND (created_at < ?1 OR (created_at = ?1 AND id < ?2))
         ORDER BY created_at DESC, id DESC LIMIT ?3"
    ))?;
    let rows = st.query_map(params![at, id, limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn update(conn: &Connection, org: &Org) -> Result<()> {
    conn.execute(
        "UPDATE orgs SET name = ?2, plan = ?3, status = ?4, app_url = ?5, logo_url = ?6,
                settings = ?7, updated_at = ?8, app_url_by_operator = ?9
         WHERE id = ?1 AND deleted_at IS NULL",
        params![
            org.id,
            org.name,
            org.plan,
            org.status,
            org.app_url,
            org.logo_url,
            serde_json::to_string(&org.settings).unwrap_or_else(|_| "{}".into()),
            org.updated_at,
            org.app_url_by_operator
        ],
    )?;
    Ok(())
}

/// Marks the org deleted and revokes every live session in it.
pub fn soft_delete(conn: &Connection, org_id: &OrgId, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE orgs SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
        params![org_id, now],
    )?;
    conn.execute(
        "UPDATE sessions SET revoked_at = ?2, revoked_reason = 'org_deleted'
         WHERE org_id = ?1 AND revoked_at IS NULL",
        params![org_id, now],
    )?;
    conn.execute(
        "UPDATE invitations SET state = 'revoked', responded_at = ?2
         WHERE org_id = ?1 AND state = 'pending'",
        params![org_id, now],
    )?;
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE org_id = ?1 AND revoked_at IS NULL",
        params![org_id, now],
    )?;
    Ok(())
}
