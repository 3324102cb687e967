//! An org's settings patch (`settings` in `PUT /org` and the operator's org calls): parsed
//! strictly, applied and validated in one place.

use crate::db::orgs::{OrgSettings, SignupMode};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::http::input::nullable;
use crate::state::AppState;
use crate::validate;
use serde::Deserialize;

/// A partial update of org settings: only the fields present change.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    signup_mode: Option<SignupMode>,
    allowed_domains: Option<Vec<String>>,
    #[serde(rename = "require2FA")]
    require_2fa: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    password_min_length: Option<Option<u32>>,
}

impl SettingsPatch {
    /// Applies the patch and validates the result.
    pub fn apply(self, state: &AppState, s: &mut OrgSettings) -> ApiResult<()> {
        if let Some(m) = self.signup_mode {
            s.signup_mode = m;
        }
        if let Some(domains) = self.allowed_domains {
            let mut clean = Vec::new();
            for d in domains {
                let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
                validate::email(&format!("x@{d}")).map_err(|_| {
                    ApiError::field(
                        ErrorCode::InvalidRequest,
                        "settings.allowedDomains",
                        format!("'{d}' is not a domain name"),
                    )
                })?;
                if !clean.contains(&d) {
                    clean.push(d);
                }
            }
            if clean.len() > 100 {
                return Err(ApiError::field(
                    ErrorCode::InvalidRequest,
                    "settings.allowedDomains",
                    "at most 100 domains",
                ));
            }
            s.allowed_domains = clean;
        }
        if let Some(r) = self.require_2fa {
            s.require_2fa = r;
        }
        if let Some(min) = self.password_min_length {
            let p = &state.config.password;
            if let Some(n) = min
                && ((n as usize) < p.min_length || (n as usize) > p.max_length)
            {
                return Err(ApiError::field(
                    ErrorCode::InvalidRequest,
                    "settings.passwordMinLength",
                    format!("must be from {} to {}", p.min_length, p.max_length),
                ));
            }
            s.password_min_length = min;
        }
        if s.signup_mode == SignupMode::Domain && s.allowed_domains.is_empty() {
            return Err(ApiError::field(
                ErrorCode::InvalidRequest,
                "settings.allowedDomains",
                "signupMode 'domain' needs at least one allowed domain",
            ));
        }
        Ok(())
    }
}
