//! Signing keys over real HTTP: the JWKS and OpenID documents, thumbprint kids, sealed private
//! halves, one active key per algorithm (the configured one for access tokens, RS256 for
//! id_tokens, signed by `ring`, its JWK with `x5c`), and rotation that keeps a retired key
//! published until its tokens expire.

mod common;
use base64::Engine as _;
use common::{SECRET, TestServer};
use latchkey::config::Algorithm;
use latchkey::crypto;
use latchkey::tokens::{AccessClaims, SigningKey, VerifyingKey};
use serde_json::{Value, json};

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

/// The claims of an id_token, as the OAuth endpoints will make them.
fn id_claims(s: &TestServer) -> Value {
    let now = s.state().now() / 1000;
    json!({
        "iss": s.state().config.server.public_url, "sub": "usr_1", "aud": "client_1",
        "iat": now, "exp": now + 300, "auth_time": now, "nonce": "n-1", "amr": ["pwd"],
        "sid": "ses_1", "org_id": "org_1", "org_slug": "acme", "org_role": "member",
    })
}

fn jwks(s: &TestServer) -> Vec<Value> {
    let r = s.get("/.well-known/jwks.json");
    assert_eq!(r.status, 200);
    r.json()["keys"].as_array().unwrap().clone()
}

fn kids(s: &TestServer) -> Vec<String> {
    jwks(s)
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
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

fn check_jwk(k: &Value, alg: &str, kty: &str) {
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
}

/// Checks an RS256 JWS with nothing but the JWK's `n` and `e`, by two implementations:
/// ring's and jwt-simple's (the `rsa` crate's public-key path).
fn rs256_verifies_with(jwk: &Value, token: &str) -> bool {
    let n = crypto::b64url_decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = crypto::b64url_decode(jwk["e"].as_str().unwrap()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = crypto::b64url_decode(sig).unwrap();
    let by_ring = ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &sig,
        )
        .is_ok();
    use jwt_simple::prelude::{NoCustomClaims, RS256PublicKey, RSAPublicKeyLike};
    let by_rsa = RS256PublicKey::from_components(&n, &e)
        .unwrap()
        .verify_token::<NoCustomClaims>(token, None)
        .is_ok();
    assert_eq!(by_ring, by_rsa, "ring and jwt-simple disagree");
    by_ring
}

fn check_jwks_for(alg: &str, kty: &str) {
    let s = TestServer::start_with(&format!("[tokens]\nalgorithm = \"{alg}\"\n"));
    let keys = jwks(&s);
    // The configured algorithm's key first, then the RS256 key for id_tokens.
    assert_eq!(keys.len(), 2, "{keys:?}");
    check_jwk(&keys[0], alg, kty);
    check_jwk(&keys[1], "RS256", "RSA");
    assert_eq!(keys[0]["kid"], s.state().keys.active_kid());
    assert_eq!(keys[1]["kid"], s.state().keys.rs256_kid());
    // A token the server signs verifies with the published key alone.
    let token = s.state().keys.sign(&claims(&s)).unwrap();
    let vk = VerifyingKey::from_jwk(&keys[0]).unwrap();
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
fn jwks_for_rs256_is_one_key_for_access_and_id_tokens() {
    let s = TestServer::start_with("[tokens]\nalgorithm = \"RS256\"\n");
    let keys = jwks(&s);
    assert_eq!(keys.len(), 1);
    check_jwk(&keys[0], "RS256", "RSA");
    let st = s.state();
    assert_eq!(st.keys.active_kid(), st.keys.rs256_kid());
    // Access tokens are RS256 through ring too, and verify with the JWK alone.
    let token = st.keys.sign(&claims(&s)).unwrap();
    assert!(rs256_verifies_with(&keys[0], &token));
    let iss = st.config.server.public_url.clone();
    assert!(
        st.keys
            .verify(&st.db, &token, &iss, "latchkey", st.now())
            .is_ok()
    );
    let id_token = st.keys.sign_rs256(&id_claims(&s)).unwrap();
    assert!(rs256_verifies_with(&keys[0], &id_token));
}

#[test]
fn jwks_publishes_an_rs256_key_with_x5c_beside_eddsa() {
    let s = TestServer::start();
    let keys = jwks(&s);
    assert_eq!(keys.len(), 2);
    check_jwk(&keys[0], "EdDSA", "OKP");
    let rsa = &keys[1];
    check_jwk(rsa, "RS256", "RSA");
    let mut members: Vec<&str> = rsa
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["alg", "e", "kid", "kty", "n", "use", "x5c", "x5t#S256"]
    );
    assert_eq!(rsa["e"], "AQAB");
    let n = crypto::b64url_decode(rsa["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256, "2048-bit modulus");
    // x5c: one standard-base64 DER certificate holding the same modulus; x5t#S256 its hash.
    let chain = rsa["x5c"].as_array().unwrap();
    assert_eq!(chain.len(), 1);
    let der = base64::engine::general_purpose::STANDARD
        .decode(chain[0].as_str().unwrap())
        .unwrap();
    assert!(der.windows(n.len()).any(|w| w == n.as_slice()));
    assert_eq!(rsa["x5t#S256"], crypto::b64url(&crypto::sha256(&der)));

    // sign_rs256: header {alg, typ, kid}, the claims as given, verifiable with n/e alone.
    let st = s.state();
    let token = st.keys.sign_rs256(&id_claims(&s)).unwrap();
    let part = |i: usize| -> Value {
        let p = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&crypto::b64url_decode(p).unwrap()).unwrap()
    };
    assert_eq!(
        part(0),
        json!({"alg": "RS256", "typ": "JWT", "kid": st.keys.rs256_kid()})
    );
    assert_eq!(part(1), id_claims(&s));
    assert!(rs256_verifies_with(rsa, &token));
    // ... and not with the EdDSA key's kid, nor with a flipped bit.
    assert_ne!(st.keys.rs256_kid(), st.keys.active_kid());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = crypto::b64url_decode(sig).unwrap();
    sig[7] ^= 1;
    assert!(!rs256_verifies_with(
        rsa,
        &format!("{input}.{}", crypto::b64url(&sig))
    ));
}

#[test]
fn verify_rs256_ignoring_expiry_checks_the_signature_only() {
    let s = TestServer::start();
    let st = s.state();
    let mut c = id_claims(&s);
    c["exp"] = json!(1);
    let token = st.keys.sign_rs256(&c).unwrap();
    assert_eq!(
        st.keys.verify_rs256_ignoring_expiry(&token),
        Some(c.clone())
    );

    // Tampered claims, a token signed by a key this server does not publish (even one that
    // names the published kid), and an EdDSA access token: refused.
    let (head, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut edited = c.clone();
    edited["sub"] = json!("usr_2");
    let forged = format!(
        "{head}.{}.{sig}",
        crypto::b64url(edited.to_string().as_bytes())
    );
    assert_eq!(st.keys.verify_rs256_ignoring_expiry(&forged), None);
    let stranger = SigningKey::generate(Algorithm::RS256);
    let foreign = stranger.sign_json(&c).unwrap();
    assert_eq!(st.keys.verify_rs256_ignoring_expiry(&foreign), None);
    let (_, f_rest) = foreign.split_once('.').unwrap();
    assert_eq!(
        st.keys
            .verify_rs256_ignoring_expiry(&format!("{head}.{f_rest}")),
        None
    );
    let access = st.keys.sign(&claims(&s)).unwrap();
    assert_eq!(st.keys.verify_rs256_ignoring_expiry(&access), None);
    for junk in ["", "a.b.c", &token[..token.len() - 2]] {
        assert_eq!(st.keys.verify_rs256_ignoring_expiry(junk), None);
    }
}

#[test]
fn openid_configuration_points_at_the_jwks() {
    let s = TestServer::start();
    let r = s.get("/.well-known/openid-configuration");
    assert_eq!(r.status, 200);
    let d = r.json();
    assert_eq!(d["issuer"], "http://127.0.0.1");
    assert_eq!(d["jwks_uri"], "http://127.0.0.1/.well-known/jwks.json");
    // id_tokens are RS256 (what every relying party accepts); access tokens the configured
    // algorithm, EdDSA by default.
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(d["access_token_signing_alg_values_supported"][1], "EdDSA");
}

#[test]
fn private_keys_are_sealed_at_rest() {
    let s = TestServer::start();
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let mut st = conn
        .prepare("SELECT kid, alg, private_enc FROM signing_keys ORDER BY alg")
        .unwrap();
    let rows: Vec<(String, String, Vec<u8>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["EdDSA", "RS256"]
    );
    let key = crypto::derive_key(SECRET, "signing-key-seal");
    let other = crypto::derive_key("another-secret-of-32-characters-xx", "signing-key-seal");
    for (kid, alg, sealed) in rows {
        let plain = crypto::open(&key, &sealed, kid.as_bytes()).unwrap();
        let alg = Algorithm::parse(&alg).unwrap();
        assert_eq!(
            SigningKey::from_private_bytes(alg, &plain).unwrap().kid(),
            kid
        );
        assert!(crypto::open(&other, &sealed, kid.as_bytes()).is_none());
    }
}

#[test]
fn rotation_keeps_the_retired_key_published_until_its_tokens_expire() {
    let s = TestServer::start();
    let st = s.state();
    let rs_kid = st.keys.rs256_kid();
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
    assert_eq!(
        kids(&s),
        vec![new_kid.clone(), rs_kid.clone(), old_kid.clone()],
        "active keys first (configured, RS256), the old one still published"
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
    assert_eq!(st.keys.rs256_kid(), rs_kid, "the RS256 key is untouched");
    let new_token = st.keys.sign(&claims(&s)).unwrap();
    assert!(
        st.keys
            .verify(&st.db, &new_token, &iss, "latchkey", st.now())
            .is_ok()
    );

    // After the access-token lifetime (plus margin) the retired key leaves the JWKS.
    s.clock.advance_ms(st.key_publish_ms() + 1000);
    assert_eq!(kids(&s), vec![new_kid, rs_kid]);
}

#[test]
fn rs256_rotation_keeps_the_old_rsa_key_published() {
    let s = TestServer::start();
    let st = s.state();
    let ed_kid = st.keys.active_kid();
    let old_rs = st.keys.rs256_kid();
    let old_id_token = st.keys.sign_rs256(&id_claims(&s)).unwrap();

    // `latchkey keys rotate --alg RS256`.
    let new_rs = latchkey::keys::rotate(
        &st.db,
        SECRET,
        Algorithm::RS256,
        st.now(),
        st.key_publish_ms(),
    )
    .unwrap();
    assert_ne!(new_rs, old_rs);
    assert_eq!(
        kids(&s),
        vec![ed_kid.clone(), new_rs.clone(), old_rs.clone()]
    );
    let keys = jwks(&s);
    assert!(keys[1]["x5c"].is_array() && keys[2]["x5c"].is_array());
    assert_ne!(keys[1]["x5t#S256"], keys[2]["x5t#S256"]);

    st.keys.reload(&st.db, st.now()).unwrap();
    assert_eq!(st.keys.active_kid(), ed_kid, "the EdDSA key is untouched");
    assert_eq!(st.keys.rs256_kid(), new_rs);
    let new_id_token = st.keys.sign_rs256(&id_claims(&s)).unwrap();
    assert!(rs256_verifies_with(&keys[1], &new_id_token));
    // An id_token of the retired key still checks while the key is published …
    assert!(
        st.keys
            .verify_rs256_ignoring_expiry(&old_id_token)
            .is_some()
    );
    assert!(
        st.keys
            .verify_rs256_ignoring_expiry(&new_id_token)
            .is_some()
    );
    // … and not after.
    s.clock.advance_ms(st.key_publish_ms() + 1000);
    st.keys.reload(&st.db, st.now()).unwrap();
    assert_eq!(kids(&s), vec![ed_kid, new_rs]);
    assert!(
        st.keys
            .verify_rs256_ignoring_expiry(&old_id_token)
            .is_none()
    );
    assert!(
        st.keys
            .verify_rs256_ignoring_expiry(&new_id_token)
            .is_some()
    );
}

#[test]
fn keys_rotate_command_takes_the_configured_algorithm_or_rs256() {
    let s = TestServer::start();
    let st = s.state();
    let cfg = s.dir.path().join("t.toml");
    std::fs::write(&cfg, &s.config_text).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env_remove("LATCHKEY_CONFIG")
            .env_remove("LATCHKEY_SECRET_KEY")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ed, rs) = (st.keys.active_kid(), st.keys.rs256_kid());
    let (ok, rs2, err) = run(&["keys", "rotate", "--alg", "RS256"]);
    assert!(ok, "{err}");
    let (ok, ed2, err) = run(&["keys", "rotate"]);
    assert!(ok, "{err}");
    assert!(err.contains("EdDSA"), "{err}");
    for bad in ["ES256", "HS256"] {
        let (ok, _, err) = run(&["keys", "rotate", "--alg", bad]);
        assert!(!ok && err.contains("RS256"), "{bad}: {err}");
    }
    // The running server serves both new keys at once and signs with them within seconds.
    assert_eq!(kids(&s), vec![ed2.clone(), rs2.clone(), ed, rs]);
    st.keys.reload(&st.db, st.now()).unwrap();
    assert_eq!((st.keys.active_kid(), st.keys.rs256_kid()), (ed2, rs2));
}

#[test]
fn changing_the_configured_algorithm_rotates_on_start() {
    let mut s = TestServer::start();
    let (ed, rs) = (s.state().keys.active_kid(), s.state().keys.rs256_kid());
    s.stop();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let text = common::base_config(dir.path(), "[tokens]\nalgorithm = \"ES256\"\n");
    let s2 = TestServer::start_in(dir, text);
    let keys = jwks(&s2);
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(
        algs,
        ["ES256", "RS256", "EdDSA"],
        "EdDSA retired, RS256 kept"
    );
    assert_eq!(keys[1]["kid"], rs);
    assert_eq!(keys[2]["kid"], ed);

    // RS256 as the configured algorithm: the RS256 key takes over access tokens too.
    let mut s2 = s2;
    s2.stop();
    let dir = std::mem::replace(&mut s2.dir, tempfile::tempdir().unwrap());
    let text = common::base_config(dir.path(), "[tokens]\nalgorithm = \"RS256\"\n");
    let s3 = TestServer::start_in(dir, text);
    assert_eq!(s3.state().keys.active_kid(), rs);
    assert_eq!(s3.state().keys.rs256_kid(), rs);
    let algs: Vec<String> = jwks(&s3)
        .iter()
        .map(|k| k["alg"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(algs, ["RS256", "ES256", "EdDSA"]);
}

/// A database of schema version 4 (one active key, any algorithm, RSA without `x5c`) with
/// `key` as its only signing key, stored as Latchkey stored keys before version 5.
/// A database as schema 4 left it (the migrations after it undone), holding `key` as its
/// only signing key. Each later migration adds its undo here.
fn old_database(key: &SigningKey, private: &[u8], extra: &str) -> TestServer {
    let mut s = TestServer::start_with(extra);
    s.stop();
    let conn = rusqlite::Connection::open(s.db_path()).unwrap();
    let sealed = crypto::seal(
        &crypto::derive_key(SECRET, "signing-key-seal"),
        private,
        key.kid().as_bytes(),
    );
    conn.execute_batch(
        "DELETE FROM signing_keys;
         DELETE FROM orgs WHERE id = 'org_none'; ALTER TABLE invitations DROP COLUMN token_enc; DROP TABLE workos_pending; DROP TABLE workos_codes; DROP TABLE idempotency_keys; DROP TABLE org_domains;
         DROP INDEX orgs_external_id; ALTER TABLE orgs DROP COLUMN external_id;
         ALTER TABLE orgs DROP COLUMN metadata; DROP INDEX users_external_id;
         ALTER TABLE users DROP COLUMN external_id; ALTER TABLE users DROP COLUMN metadata;
         DROP TABLE oauth_sessions; DROP TABLE oauth_device_codes; DROP TABLE oauth_consents;
         DROP TABLE oauth_codes; DROP TABLE oauth_clients; ALTER TABLE sessions DROP COLUMN client_id;
         DROP INDEX signing_keys_active_per_alg; DROP TABLE refresh_chain; DROP TABLE refresh_successors;
         CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;
         PRAGMA user_version = 4;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_enc, created_at) VALUES (?1, ?2, ?3, ?4, 1)",
        rusqlite::params![key.kid(), key.alg().as_str(), key.public_jwk().to_string(), sealed],
    )
    .unwrap();
    drop(conn);
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let text = common::base_config(dir.path(), extra);
    TestServer::start_in(dir, text)
}

#[test]
fn an_older_database_with_an_rs256_key_still_loads() {
    // The key as jwt-simple made it (PKCS#8), and as PKCS#1 (RSAPrivateKey) DER.
    let key = SigningKey::generate(Algorithm::RS256);
    let pkcs8 = key.private_bytes();
    let pkcs1 = pkcs8[26..].to_vec();
    assert_eq!(pkcs8[22], 0x04, "the OCTET STRING around the PKCS#1 key");
    for private in [pkcs8, pkcs1] {
        let s = old_database(&key, &private, "[tokens]\nalgorithm = \"RS256\"\n");
        let st = s.state();
        // A token the old server signed with that key.
        let old_token = key.sign(&claims(&s)).unwrap();
        assert_eq!(st.db.version().unwrap(), latchkey::db::SCHEMA_VERSION);
        assert_eq!(st.keys.active_kid(), key.kid());
        assert_eq!(st.keys.rs256_kid(), key.kid());
        // The same key, now with a certificate; its tokens still verify.
        let keys = jwks(&s);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kid"], key.kid());
        assert!(keys[0]["x5c"].is_array());
        let iss = st.config.server.public_url.clone();
        assert!(
            st.keys
                .verify(&st.db, &old_token, &iss, "latchkey", st.now())
                .is_ok()
        );
        assert!(rs256_verifies_with(
            &keys[0],
            &st.keys.sign_rs256(&id_claims(&s)).unwrap()
        ));
    }
}

#[test]
fn an_older_database_with_an_eddsa_key_gains_an_rs256_key() {
    let key = SigningKey::generate(Algorithm::EdDSA);
    let s = old_database(&key, &key.private_bytes(), "");
    let st = s.state();
    assert_eq!(
        st.keys.active_kid(),
        key.kid(),
        "the EdDSA key stays active"
    );
    let keys = jwks(&s);
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs, ["EdDSA", "RS256"]);
    assert_eq!(keys[1]["kid"], st.keys.rs256_kid());
}
