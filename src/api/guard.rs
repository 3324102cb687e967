//! Guards: the first line of a handler, returning a typed context or the right 401/403.

use crate::app::AppState;
use crate::crypto;
use crate::db::admin_keys;
use crate::error::{ApiError, ApiResult};
use crate::http::input::bearer;
use rouille::Request;

pub const ADMIN_KEY_PREFIX: &str = "sk_admin_";

/// An authenticated operator request.
pub struct AdminCtx {
    pub key_id: String,
}

/// Requires `Authorization: Bearer sk_admin_<64 hex>` naming a live admin key.
pub fn admin(state: &AppState, req: &Request) -> ApiResult<AdminCtx> {
    let unauth = || {
        ApiError::unauthenticated(
            "A valid admin key is required (Authorization: Bearer sk_admin_…)",
        )
        .with_header("WWW-Authenticate", "Bearer")
    };
    let key = bearer(req).ok_or_else(unauth)?;
    let well_formed = key
        .strip_prefix(ADMIN_KEY_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(unauth());
    }
    let hash = crypto::token_hash(key);
    let found = state
        .db
        .read(|c| admin_keys::find_live(c, &hash))?
        .filter(|(_, stored)| crypto::ct_eq(stored.as_bytes(), hash.as_bytes()));
    match found {
        Some((key_id, _)) => Ok(AdminCtx { key_id }),
        None => Err(unauth()),
    }
}
