//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route in [`super::ROUTES`].
//! It is hand-written JSON (`openapi.json` beside this file), served without its indentation
//! (`build.rs`). Kept true by
//! `tests/openapi.rs` (every route documented, every documented operation routed, real
//! responses checked against it) and by `.ci/schemathesis.sh` (a fuzzer against a live server).

use crate::api::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;
use rouille::{Request, Response};

/// The document, as served: `openapi.json` with the whitespace between tokens removed.
pub const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// A bare JSON document (no envelope): OpenAPI tools read it as it is.
pub fn document(_: &AppState, _: &Ctx, _: &Request) -> ApiResult<Response> {
    Ok(Response::from_data("application/json", DOCUMENT))
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_is_json_of_openapi_3_1() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        // The same document as the hand-written file, only smaller.
        let source: serde_json::Value =
            serde_json::from_str(include_str!("openapi.json")).expect("valid JSON");
        assert_eq!(doc, source);
        assert!(super::DOCUMENT.len() < include_str!("openapi.json").len() * 2 / 3);
    }
}
