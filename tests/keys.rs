//! Signing keys over real HTTP: the JWKS and OpenID documents, thumbprint kids, sealed private
//! halves, and rotation that keeps the retired key published until its tokens expire.

mod common;
use common::{SECRET, TestServer};
use latchkey::config::Algorithm;
use latchkey::crypto;
use latchkey::tokens::{AccessClaims, VerifyingKey};
use serde_json::Value;

fn claims(s: &TestServer) -> AccessClaims {
    let now = s.state().now() / 1000;
    AccessClaims {
        iss: s.state().config.server.public_url.clone(),
        sub: "usr_1".into(),
        aud: "latchkey".into(),
        iat: now,
        exp: now + 900,
        jti: "jti_1".into(),
        sid: "ses_1".into(),
        org_id: "org_1".into(),
        org_slug: "acme".into(),
        org_role: "member".into(),
        email: "a@example.com".into(),
        email_verified: true,
        amr: vec!["pwd".into()],
    }
}

fn jwks(s: &TestServer) -> Vec<Value> {
    let r = s.get("/.well-known/jwks.json");
    assert_eq!(r.status, 200);
    r.json()["keys"].as_array().unwrap().clone()
}

fn thumbprint(jwk: &Value) -> String {
    let canonical = match jwk["kty"].as_str().unwrap() {
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["x"].as_str().unwrap()
        ),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk["e"].as_str().unwrap(),
            jwk["n"].as_str().unwrap()
        ),
        other => panic!("kty {other}"),
    };
    crypto::b64url(&crypto::sha256(canonical.as_bytes()))
}

fn check_jwks_for(alg: &str, kty: &str) {
    let s = TestServer::start_with(&format!("[tokens]\nalgorithm = \"{alg}\"\n"));
    let keys = jwks(&s);
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["alg"], alg);
    assert_eq!(k["kty"], kty);
    assert_eq!(k["use"], "sig");
    assert_eq!(
        k["kid"].as_str().unwrap(),
        thumbprint(k),
        "kid is the RFC 7638 thumbprint"
    );
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(k.get(private).is_none(), "{private} must not be published");
    }
    // A token the server signs verifies with the published key alone.
    let token = s.state().keys.sign(&claims(&s)).unwrap();
    let vk = VerifyingKey::from_jwk(k).unwrap();
    let now = s.state().now() / 1000;
    let got = latchkey::tokens::verify(
        &[vk],
        &token,
        &s.state().config.server.public_url,
        "latchkey",
        now,
    )
    .unwrap();
    assert_eq!(got.sub, "usr_1");
}

#[test]
fn jwks_for_each_algorithm() {
    check_jwks_for("EdDSA", "OKP");
    check_jwks_for("ES256", "EC");
}

#[test]
fn jwks_for_rs256() {
    check_jwks_for("RS256", "RSA");
}

#[test]
fn openid_configuration_points_at_the_jwks() {
    let s = TestServer::start();
    let r = s.get("/.well-known/openid-configuration");
    assert_eq!(r.status, 200);
    let d = r.json();
    assert_eq!(d["issuer"], "http://127.0.0.1");
    assert_eq!(d["jwks_uri"], "http://127.0.0.1/.well-known/jwks.json");
    assert_eq!(d["id_token_signing_alg_values_supported"][0], "EdDSA");
}

#[test]
fn private_keys_are_sealed_at_rest() {
    let s = TestServer::start();
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let (kid, sealed): (String, Vec<u8>) = conn
        .query_row("SELECT kid, private_enc FROM signing_keys", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let key = crypto::derive_key(SECRET, "signing-key-seal");
    assert!(crypto::open(&key, &sealed, kid.as_bytes()).is_some());
    assert!(
        crypto::open(
            &crypto::derive_key("another-secret-of-32-characters-xx", "signing-key-seal"),
            &sealed,
            kid.as_bytes()
        )
        .is_none()
    );
}

#[test]
fn rotation_keeps_the_retired_key_published_until_its_tokens_expire() {
    let s = TestServer::start();
    let st = s.state();
    let old_kid = jwks(&s)[0]["kid"].as_str().unwrap().to_string();
    let old_token = st.keys.sign(&claims(&s)).unwrap();

    // What `latchkey keys rotate` does, against the live database.
    let new_kid = latchkey::keys::rotate(
        &st.db,
        SECRET,
        Algorithm::EdDSA,
        st.now(),
        st.key_publish_ms(),
    )
    .unwrap();
    let kids: Vec<String> = jwks(&s)
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kids,
        vec![new_kid.clone(), old_kid.clone()],
        "new key first, old still published"
    );

    // Tokens signed by the old key still verify; the server signs with the new key after reload.
    let iss = st.config.server.public_url.clone();
    assert!(
        st.keys
            .verify(&st.db, &old_token, &iss, "latchkey", st.now())
            .is_ok()
    );
    st.keys.reload(&st.db, st.now()).unwrap();
    assert_eq!(st.keys.active_kid(), new_kid);
    let new_token = st.keys.sign(&claims(&s)).unwrap();
    assert!(
        st.keys
            .verify(&st.db, &new_token, &iss, "latchkey", st.now())
            .is_ok()
    );

    // After the access-token lifetime (plus margin) the retired key leaves the JWKS.
    s.clock.advance_ms(st.key_publish_ms() + 1000);
    let kids: Vec<String> = jwks(&s)
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kids, vec![new_kid]);
}

#[test]
fn changing_the_configured_algorithm_rotates_on_start() {
    let mut s = TestServer::start();
    s.stop();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let text = common::base_config(dir.path(), "[tokens]\nalgorithm = \"ES256\"\n");
    let s2 = TestServer::start_in(dir, text);
    let keys = jwks(&s2);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[1]["alg"], "EdDSA");
}
