//! Access tokens: signing keys (EdDSA/Ed25519, ES256/P-256, RS256), their public JWKs and
//! RFC 7638 key ids, the JWKS document, and JWT signing and verification against the
//! caller's clock. EdDSA and ES256 go through jwt-simple; RS256 signs and verifies with `ring`
//! (`tokens/rsa.rs`; RUSTSEC-2023-0071), and its JWK carries a self-signed `x5c`.
//!
//! Times never come from the library's wall clock: [`SigningKey::sign`] writes `iat`/`exp`
//! exactly as given in [`AccessClaims`], and [`verify`] checks them against `now_secs`:
//! `exp > now_secs` (no leeway), and `iat` (and `nbf`, if a token carries one) at most
//! [`FUTURE_SKEW_SECS`] ahead of `now_secs`.

use std::fmt;

use base64::Engine as _;
use jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair, ES256PublicKey, Ed25519KeyPair,
    Ed25519PublicKey, EdDSAKeyPairLike, EdDSAPublicKeyLike,
};
use jwt_simple::claims::{Audiences, Claims, NoCustomClaims};
use jwt_simple::common::VerificationOptions;
use jwt_simple::prelude::{Duration, UnixTimeStamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::crypto::{b64url, b64url_decode, sha256};

mod rsa;
use rsa::RsaSigner;

/// How far in the future `iat` (and `nbf`) may be, in seconds, to absorb clock skew between
/// instances. `exp` gets no leeway: a token is dead at `now_secs >= exp`.
pub const FUTURE_SKEW_SECS: i64 = 60;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// RSA moduli shorter than this (in bits) are refused, whether generated, loaded or imported.
const MIN_RSA_BITS: usize = 2048;

/// The JWS algorithm of a signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    EdDSA,
    ES256,
    RS256,
}

impl Algorithm {
    /// The JOSE name: `"EdDSA"`, `"ES256"` or `"RS256"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    /// Parses a JOSE name (ASCII case-insensitive, for config files). Token headers are
    /// never parsed with this: they are compared with [`Algorithm::as_str`] exactly.
    pub fn parse(s: &str) -> Option<Self> {
        [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token could not be issued or was refused, or why a key could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed compact JWS with the expected header and claims (also: claims that
    /// cannot be signed, such as negative times).
    Malformed,
    /// No `kid` in the header, or no key with that `kid`.
    UnknownKey,
    /// The signature does not verify, or the header's `alg` is not the key's algorithm.
    BadSignature,
    /// `exp <= now`.
    Expired,
    /// `iat` (or `nbf`) more than [`FUTURE_SKEW_SECS`] in the future.
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// A key could not be generated, decoded or imported.
    Key(String),
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed => f.write_str("malformed token"),
            TokenError::UnknownKey => f.write_str("token signed by an unknown key"),
            TokenError::BadSignature => f.write_str("bad token signature"),
            TokenError::Expired => f.write_str("token expired"),
            TokenError::NotYetValid => f.write_str("token not yet valid"),
            TokenError::WrongIssuer => f.write_str("token has the wrong issuer"),
            TokenError::WrongAudience => f.write_str("token has the wrong audience"),
            TokenError::Key(msg) => write!(f, "key error: {msg}"),
        }
    }
}

impl std::error::Error for TokenError {}

fn key_err(what: &str) -> impl Fn(jwt_simple::Error) -> TokenError + '_ {
    move |e| TokenError::Key(format!("{what}: {e}"))
}

/// The claims of a Latchkey access token (API.md §2).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: crate::ids::UserId,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sid: crate::ids::SessionId,
    pub org_id: crate::ids::OrgId,
    pub org_slug: String,
    pub org_role: String,
    pub email: String,
    pub email_verified: bool,
    pub amr: Vec<String>,
}

/// The non-registered claims, as jwt-simple's custom-claims payload.
#[derive(Serialize)]
struct CustomClaims<'a> {
    sid: &'a str,
    org_id: &'a str,
    org_slug: &'a str,
    org_role: &'a str,
    email: &'a str,
    email_verified: bool,
    amr: &'a [String],
}

enum KeyPair {
    Ed(Ed25519KeyPair),
    Es(ES256KeyPair),
    Rs(RsaSigner),
}

impl Clone for KeyPair {
    fn clone(&self) -> Self {
        match self {
            KeyPair::Ed(k) => KeyPair::Ed(k.clone()),
            // jwt-simple's ES256KeyPair is not Clone: round-trip its scalar (always valid).
            KeyPair::Es(k) => {
                let copy = ES256KeyPair::from_bytes(&k.to_bytes())
                    .expect("a valid P-256 scalar round-trips");
                KeyPair::Es(match k.key_id() {
                    Some(kid) => copy.with_key_id(kid),
                    None => copy,
                })
            }
            KeyPair::Rs(k) => KeyPair::Rs(k.clone()),
        }
    }
}

#[derive(Clone)]
enum PublicKey {
    Ed(Ed25519PublicKey),
    Es(ES256PublicKey),
    /// Modulus and exponent, big-endian without leading zeros, within [`rsa::check_policy`].
    Rs {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

/// A key pair that signs access tokens. Its `kid` is the RFC 7638 thumbprint of its public key.
#[derive(Clone)]
pub struct SigningKey {
    key: KeyPair,
    public: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .field("alg", &self.public.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key (RS256: 2048-bit modulus).
    pub fn generate(alg: Algorithm) -> SigningKey {
        let key = match alg {
            Algorithm::EdDSA => KeyPair::Ed(Ed25519KeyPair::generate()),
            Algorithm::ES256 => KeyPair::Es(ES256KeyPair::generate()),
            Algorithm::RS256 => {
                KeyPair::Rs(RsaSigner::generate().expect("2048-bit RSA generation is supported"))
            }
        };
        Self::from_key_pair(key).expect("a freshly generated key pair is valid")
    }

    fn from_key_pair(key: KeyPair) -> Result<SigningKey, TokenError> {
        let public = match &key {
            KeyPair::Ed(k) => PublicKey::Ed(k.public_key()),
            KeyPair::Es(k) => PublicKey::Es(k.public_key()),
            KeyPair::Rs(k) => {
                let (n, e) = k.components();
                PublicKey::Rs { n, e }
            }
        };
        let public = VerifyingKey::from_public_key(public)?;
        let key = match key {
            KeyPair::Ed(k) => KeyPair::Ed(k.with_key_id(&public.kid)),
            KeyPair::Es(k) => KeyPair::Es(k.with_key_id(&public.kid)),
            // The kid goes into the header at signing time.
            KeyPair::Rs(k) => KeyPair::Rs(k),
        };
        Ok(SigningKey { key, public })
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url without padding).
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.public.alg
    }

    /// The private key as PKCS#8 DER (all three algorithms), for the caller to seal.
    pub fn private_bytes(&self) -> Vec<u8> {
        match &self.key {
            KeyPair::Ed(k) => k.to_der(),
            KeyPair::Es(k) => k.to_der().expect("a valid P-256 key encodes as PKCS#8"),
            KeyPair::Rs(k) => k.pkcs8().to_vec(),
        }
    }

    /// Loads a key from [`SigningKey::private_bytes`]. The public key is always recomputed
    /// from the private key (Ed25519 from the seed), never trusted from the input. RS256 also
    /// accepts PKCS#1 DER (re-encoded as PKCS#8 for [`SigningKey::private_bytes`]); `ring`
    /// consistency-checks it, with a 2048–4096-bit modulus and exponent 65537.
    pub fn from_private_bytes(alg: Algorithm, bytes: &[u8]) -> Result<SigningKey, TokenError> {
        let key = match alg {
            Algorithm::EdDSA => {
                KeyPair::Ed(Ed25519KeyPair::from_der(bytes).map_err(key_err("Ed25519 key"))?)
            }
            Algorithm::ES256 => {
                KeyPair::Es(ES256KeyPair::from_der(bytes).map_err(key_err("P-256 key"))?)
            }
            Algorithm::RS256 => KeyPair::Rs(RsaSigner::from_der(bytes)?),
        };
        Self::from_key_pair(key)
    }

    /// The public JWK: `kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg`, `use: "sig"`. Never
    /// contains private members.
    pub fn public_jwk(&self) -> Value {
        self.public.jwk.clone()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    /// The public JWK to store and publish for a key made at `now_ms`: for RS256 with `x5c`
    /// (a self-signed certificate over the key, valid from `now_ms`, never expiring) and
    /// `x5t#S256`; for the other algorithms [`SigningKey::public_jwk`].
    pub fn publishable_jwk(&self, now_ms: i64) -> Result<Value, TokenError> {
        match &self.key {
            KeyPair::Rs(k) => {
                let cert = k.self_signed_cert(self.kid(), now_ms)?;
                Ok(self.public.clone().with_certificate(cert)?.jwk)
            }
            _ => Ok(self.public_jwk()),
        }
    }

    /// Signs any JSON claims as a compact JWS `{"alg":"RS256","typ":"JWT","kid"}` (RS256
    /// keys only: id_tokens and other tokens whose claims are not [`AccessClaims`]). The
    /// claims are serialized as given; nothing is added, no time is read.
    pub fn sign_json(&self, claims: &Value) -> Result<String, TokenError> {
        let KeyPair::Rs(k) = &self.key else {
            return Err(TokenError::Key(format!(
                "sign_json needs an RS256 key, not {}",
                self.alg()
            )));
        };
        if !claims.is_object() {
            return Err(TokenError::Malformed);
        }
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid()});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = k.sign(input.as_bytes())?;
        within_max_len(format!("{input}.{}", b64url(&sig)))
    }

    /// Signs `claims` as a compact JWS with header `{"alg","typ":"JWT","kid"}`. The payload
    /// holds exactly the fields of [`AccessClaims`] (`aud` as a single string, no `nbf`).
    /// Negative `iat`/`exp` are refused with [`TokenError::Malformed`].
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let iat = u64::try_from(claims.iat).map_err(|_| TokenError::Malformed)?;
        let exp = u64::try_from(claims.exp).map_err(|_| TokenError::Malformed)?;
        let custom = CustomClaims {
            sid: &claims.sid,
            org_id: &claims.org_id,
            org_slug: &claims.org_slug,
            org_role: &claims.org_role,
            email: &claims.email,
            email_verified: claims.email_verified,
            amr: &claims.amr,
        };
        let mut jwt = Claims::with_custom_claims(custom, Duration::from_secs(0));
        // Overwrite every time the library took from its own clock.
        jwt.issued_at = Some(UnixTimeStamp::from_secs(iat));
        jwt.expires_at = Some(UnixTimeStamp::from_secs(exp));
        jwt.invalid_before = None;
        jwt.issuer = Some(claims.iss.clone());
        jwt.subject = Some(claims.sub.to_string());
        jwt.audiences = Some(Audiences::AsString(claims.aud.clone()));
        jwt.jwt_id = Some(claims.jti.clone());
        jwt.nonce = None;
        let signed = match &self.key {
            KeyPair::Ed(k) => k.sign(jwt),
            KeyPair::Es(k) => k.sign(jwt),
            KeyPair::Rs(_) => {
                let claims = serde_json::to_value(claims).map_err(|_| TokenError::Malformed)?;
                return self.sign_json(&claims);
            }
        };
        signed
            .map_err(|e| TokenError::Key(format!("signing failed: {e}")))
            .and_then(within_max_len)
    }
}

/// A token this server would refuse to read (over [`MAX_TOKEN_LEN`]) is never issued: claims
/// that large are refused as [`TokenError::Malformed`]. Stored claims cannot come near it (an
/// email is at most 254 bytes); the jwt fuzz target found the gap with claims of kilobytes of
/// control characters, each written as a six-byte `\u00XX` escape.
fn within_max_len(token: String) -> Result<String, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        Err(TokenError::Malformed)
    } else {
        Ok(token)
    }
}

/// A public key that verifies access tokens; rebuilt from a stored public JWK for retired keys.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    key: PublicKey,
    /// The canonical public JWK, rebuilt from the key itself.
    jwk: Value,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

impl VerifyingKey {
    /// Rebuilds a key from a public JWK as produced by [`SigningKey::public_jwk`]. Accepted:
    /// OKP/Ed25519, EC/P-256 and RSA (2048–4096 bits, e = 65537). `alg`, `use` and `kid` are
    /// optional, but when present must be the key type's algorithm, `"sig"`, and the RFC 7638
    /// thumbprint.
    /// A JWK carrying private members (`d`, `p`, …) is refused, so a private key is never
    /// mistaken for a public one. The JWK later published is rebuilt, not copied.
    pub fn from_jwk(jwk: &Value) -> Result<VerifyingKey, TokenError> {
        let obj = jwk
            .as_object()
            .ok_or_else(|| TokenError::Key("JWK is not a JSON object".into()))?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(TokenError::Key(format!(
                "JWK has private member \"{m}\"; only public JWKs are accepted"
            )));
        }
        let member = |name: &str| -> Result<Vec<u8>, TokenError> {
            obj.get(name)
                .and_then(Value::as_str)
                .and_then(b64url_decode)
                .ok_or_else(|| {
                    TokenError::Key(format!("JWK member \"{name}\" missing or not base64url"))
                })
        };
        let text = |name: &str| obj.get(name).and_then(Value::as_str);
        let bad = |msg: &str| TokenError::Key(msg.to_string());
        let public = match (text("kty"), text("crv")) {
            (Some("OKP"), Some("Ed25519")) => {
                let x = member("x")?;
                let pk = Ed25519PublicKey::from_bytes(&x)
                    .map_err(|_| bad("Ed25519 \"x\" must be 32 bytes"))?;
                PublicKey::Ed(pk)
            }
            (Some("EC"), Some("P-256")) => {
                let (x, y) = (member("x")?, member("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad("P-256 \"x\" and \"y\" must be 32 bytes each"));
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                let pk = ES256PublicKey::from_bytes(&sec1)
                    .map_err(|_| bad("P-256 point is not on the curve"))?;
                PublicKey::Es(pk)
            }
            (Some("RSA"), _) => {
                let (n, e) = (member("n")?, member("e")?);
                let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
                rsa::check_policy(n, e)?;
                PublicKey::Rs {
                    n: n.to_vec(),
                    e: e.to_vec(),
                }
            }
            (Some(kty), crv) => {
                return Err(TokenError::Key(format!(
                    "unsupported JWK kty {kty:?} / crv {crv:?}"
                )));
            }
            (None, _) => return Err(bad("JWK has no \"kty\"")),
        };
        let mut key = VerifyingKey::from_public_key(public)?;
        if let Some(alg) = obj.get("alg")
            && alg.as_str() != Some(key.alg.as_str())
        {
            return Err(TokenError::Key(format!(
                "JWK alg {alg} does not match its key type ({})",
                key.alg
            )));
        }
        if let Some(u) = obj.get("use")
            && u.as_str() != Some("sig")
        {
            return Err(TokenError::Key(format!("JWK use {u} is not \"sig\"")));
        }
        if let Some(kid) = obj.get("kid")
            && kid.as_str() != Some(key.kid.as_str())
        {
            return Err(TokenError::Key(format!(
                "JWK kid {kid} is not the key's RFC 7638 thumbprint {}",
                key.kid
            )));
        }
        if let Some(chain) = obj.get("x5c") {
            let cert = chain
                .as_array()
                .and_then(|c| c.first())
                .and_then(Value::as_str)
                .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
                .ok_or_else(|| bad("JWK x5c is not an array of base64 certificates"))?;
            key = key.with_certificate(cert)?;
            if let Some(t) = obj.get("x5t#S256")
                && *t != key.jwk["x5t#S256"]
            {
                return Err(bad("JWK x5t#S256 is not the SHA-256 of its certificate"));
            }
        }
        Ok(key)
    }

    /// Adds `x5c` (this one certificate, DER) and `x5t#S256` to the JWK of an RSA key. The
    /// certificate must carry this very key.
    fn with_certificate(mut self, cert: Vec<u8>) -> Result<VerifyingKey, TokenError> {
        let PublicKey::Rs { n, e } = &self.key else {
            return Err(TokenError::Key(format!(
                "x5c is only published for RSA keys, not {}",
                self.alg
            )));
        };
        if !rsa::cert_holds_key(&cert, n, e) {
            return Err(TokenError::Key(
                "x5c certificate does not carry the JWK's key".into(),
            ));
        }
        self.jwk["x5c"] = json!([base64::engine::general_purpose::STANDARD.encode(&cert)]);
        self.jwk["x5t#S256"] = json!(b64url(&sha256(&cert)));
        Ok(self)
    }

    /// Whether the JWK carries `x5c` (RSA keys made before certificates were added do not).
    pub fn has_certificate(&self) -> bool {
        self.jwk.get("x5c").is_some()
    }

    /// Computes the canonical JWK members, thumbprint and full public JWK.
    fn from_public_key(key: PublicKey) -> Result<VerifyingKey, TokenError> {
        // RFC 7638 §3.2: required members only, lexicographic order, no whitespace. All values
        // are base64url or fixed names, so no JSON escaping is needed.
        let (alg, canonical, mut jwk) = match &key {
            PublicKey::Ed(k) => {
                let x = b64url(&k.to_bytes());
                (
                    Algorithm::EdDSA,
                    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
                    json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                )
            }
            PublicKey::Es(k) => {
                let p = k.public_key().to_bytes_uncompressed();
                if p.len() != 65 || p[0] != 4 {
                    return Err(TokenError::Key("unexpected P-256 point encoding".into()));
                }
                let (x, y) = (b64url(&p[1..33]), b64url(&p[33..65]));
                (
                    Algorithm::ES256,
                    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
                    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                )
            }
            PublicKey::Rs { n, e } => {
                rsa::check_policy(n, e)?;
                let (n, e) = (b64url(n), b64url(e));
                (
                    Algorithm::RS256,
                    format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
                    json!({"kty": "RSA", "n": n, "e": e}),
                )
            }
        };
        let kid = b64url(&sha256(canonical.as_bytes()));
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg.as_str());
        jwk["use"] = json!("sig");
        let key = match key {
            PublicKey::Ed(k) => PublicKey::Ed(k.with_key_id(&kid)),
            PublicKey::Es(k) => PublicKey::Es(k.with_key_id(&kid)),
            rs @ PublicKey::Rs { .. } => rs,
        };
        Ok(VerifyingKey { kid, alg, key, jwk })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK (same shape as [`SigningKey::public_jwk`]): what to store for a key
    /// once it is retired, and what [`jwks`] publishes.
    pub fn public_jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// Signature (and header) check only: EdDSA and ES256 through jwt-simple, its time checks
    /// neutralised (time pinned to 0, future tokens accepted; [`verify`] checks times itself);
    /// RS256 through `ring` over the signing input, whatever the claims.
    fn check_signature(&self, token: &str) -> Result<(), TokenError> {
        if let PublicKey::Rs { n, e } = &self.key {
            let (input, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
            let sig = b64url_decode(sig).ok_or(TokenError::Malformed)?;
            return if rsa::verify(n, e, input.as_bytes(), &sig) {
                Ok(())
            } else {
                Err(TokenError::BadSignature)
            };
        }
        let options = VerificationOptions {
            accept_future: true,
            artificial_time: Some(UnixTimeStamp::from_secs(0)),
            time_tolerance: Some(Duration::from_secs(0)),
            required_key_id: Some(self.kid.clone()),
            max_token_length: Some(MAX_TOKEN_LEN),
            ..Default::default()
        };
        let result = match &self.key {
            PublicKey::Ed(k) => k.verify_token::<NoCustomClaims>(token, Some(options)),
            PublicKey::Es(k) => k.verify_token::<NoCustomClaims>(token, Some(options)),
            PublicKey::Rs { .. } => unreachable!("checked above"),
        };
        result.map(|_| ()).map_err(|_| TokenError::BadSignature)
    }
}

/// Verifies `token` against the key in `keys` named by its header's `kid`, then its claims.
///
/// Refused, in this order: oversized or not three non-empty base64url parts, or a header that
/// is not a JSON object with a string `alg` ([`TokenError::Malformed`]); no `kid` or no such key
/// ([`TokenError::UnknownKey`]); header `alg` other than that key's algorithm — `none`,
/// `HS256`, … — or a bad signature ([`TokenError::BadSignature`]); claims missing or of the
/// wrong type ([`TokenError::Malformed`]); `exp <= now_secs` ([`TokenError::Expired`], no
/// leeway); `iat` or `nbf` later than `now_secs + FUTURE_SKEW_SECS`
/// ([`TokenError::NotYetValid`]); `iss != issuer`; `aud != audience` (a single string).
pub fn verify(
    keys: &[VerifyingKey],
    token: &str,
    issuer: &str,
    audience: &str,
    now_secs: i64,
) -> Result<AccessClaims, TokenError> {
    verify_with(keys, token, issuer, audience, now_secs, Expiry::Enforce)
}

/// Like [`verify`] (same keys, signature, issuer, audience and `iat`/`nbf` checks against the
/// real `now_secs`), except that a token past its `exp` is accepted: logout uses it to end the
/// session of an expired but genuine token. No time is ever taken from the token itself.
pub fn verify_ignoring_expiry(
    keys: &[VerifyingKey],
    token: &str,
    issuer: &str,
    audience: &str,
    now_secs: i64,
) -> Result<AccessClaims, TokenError> {
    verify_with(keys, token, issuer, audience, now_secs, Expiry::Ignore)
}

/// Whether [`verify_with`] refuses a token past its `exp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    Enforce,
    Ignore,
}

fn verify_with(
    keys: &[VerifyingKey],
    token: &str,
    issuer: &str,
    audience: &str,
    now_secs: i64,
    expiry: Expiry,
) -> Result<AccessClaims, TokenError> {
    let payload = signed_payload(keys, token)?;

    // The signature covers exactly these bytes; read the claims ourselves, as plain integers.
    let payload: Value = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    let nbf = match payload.get("nbf") {
        None => None,
        Some(v) => Some(v.as_i64().ok_or(TokenError::Malformed)?),
    };
    let claims = AccessClaims::deserialize(&payload).map_err(|_| TokenError::Malformed)?;
    if expiry == Expiry::Enforce && claims.exp <= now_secs {
        return Err(TokenError::Expired);
    }
    let latest = now_secs.saturating_add(FUTURE_SKEW_SECS);
    if claims.iat > latest || nbf.is_some_and(|nbf| nbf > latest) {
        return Err(TokenError::NotYetValid);
    }
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(claims)
}

/// The claims of `token` once its signature checks against the key of `keys` its header names:
/// the first checks of [`verify`] (size, shape, `kid`, `alg`, signature), none of its claim
/// checks — no time, issuer or audience is looked at. For tokens whose claims are not
/// [`AccessClaims`] (an id_token presented back as `id_token_hint`); the caller checks what
/// it relies on. The claims must be a JSON object.
pub fn verify_signature_only(keys: &[VerifyingKey], token: &str) -> Result<Value, TokenError> {
    let payload = signed_payload(keys, token)?;
    let claims: Value = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if !claims.is_object() {
        return Err(TokenError::Malformed);
    }
    Ok(claims)
}

/// The decoded payload of `token` once its header and signature check out against `keys`.
fn signed_payload(keys: &[VerifyingKey], token: &str) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(TokenError::Malformed);
    };
    let decode = |s: &str| {
        if s.is_empty() { None } else { b64url_decode(s) }
    };
    let header = decode(header_b64).ok_or(TokenError::Malformed)?;
    let payload = decode(payload_b64).ok_or(TokenError::Malformed)?;
    decode(signature_b64).ok_or(TokenError::Malformed)?;
    let header: Value = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    let header = header.as_object().ok_or(TokenError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed)?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(TokenError::UnknownKey)?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(TokenError::UnknownKey)?;
    if alg != key.alg.as_str() {
        return Err(TokenError::BadSignature);
    }
    key.check_signature(token)?;
    Ok(payload)
}

/// The JWKS document `{"keys":[jwk, …]}` for these keys, in the order given.
pub fn jwks(keys: &[VerifyingKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use std::sync::OnceLock;

    const ISS: &str = "https://auth.example.com";
    const AUD: &str = "latchkey";
    const NOW: i64 = 1_795_429_800;

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: ISS.into(),
            sub: "usr_01HZY".into(),
            aud: AUD.into(),
            iat: NOW,
            exp: NOW + 900,
            jti: "jti-1".into(),
            sid: "ses_1".into(),
            org_id: "org_1".into(),
            org_slug: "acme".into(),
            org_role: "owner".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            amr: vec!["pwd".into(), "otp".into()],
        }
    }

    /// One key per algorithm, generated once (RSA generation is slow in debug builds).
    fn key(alg: Algorithm) -> &'static SigningKey {
        static KEYS: OnceLock<[SigningKey; 3]> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            [
                SigningKey::generate(Algorithm::EdDSA),
                SigningKey::generate(Algorithm::ES256),
                SigningKey::generate(Algorithm::RS256),
            ]
        });
        match alg {
            Algorithm::EdDSA => &keys[0],
            Algorithm::ES256 => &keys[1],
            Algorithm::RS256 => &keys[2],
        }
    }

    const ALGS: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

    /// The shared RS256 key's signer, for the tests of [`rsa`].
    pub(super) fn rsa_signer() -> RsaSigner {
        match &key(Algorithm::RS256).key {
            KeyPair::Rs(k) => k.clone(),
            _ => unreachable!(),
        }
    }

    fn id_claims() -> Value {
        json!({"iss": ISS, "sub": "usr_1", "aud": ["client_1"], "exp": NOW - 10,
               "iat": NOW - 100, "nonce": "n-0S6_WzA2Mj", "amr": ["pwd"]})
    }

    #[test]
    fn rs256_signs_with_ring_and_verifies_with_the_public_components() {
        let sk = key(Algorithm::RS256);
        let token = sk.sign_json(&id_claims()).unwrap();
        let header = part(&token, 0);
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": sk.kid()})
        );
        assert_eq!(part(&token, 1), id_claims());
        assert!(!token.contains('='), "base64url without padding");

        // Any RS256 verifier holding only the JWK's n and e accepts it.
        let jwk = sk.public_jwk();
        let n = b64url_decode(jwk["n"].as_str().unwrap()).unwrap();
        let e = b64url_decode(jwk["e"].as_str().unwrap()).unwrap();
        let public = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = b64url_decode(sig).unwrap();
        assert_eq!(sig.len(), 256);
        let params = &ring::signature::RSA_PKCS1_2048_8192_SHA256;
        assert!(public.verify(params, input.as_bytes(), &sig).is_ok());
        // Deterministic (PKCS#1 v1.5): the same input, the same signature.
        assert_eq!(sk.sign_json(&id_claims()).unwrap(), token);

        // A tampered signature or payload fails, with ring and through `verify_signature_only`.
        let mut bad = sig.clone();
        bad[100] ^= 0x40;
        assert!(public.verify(params, input.as_bytes(), &bad).is_err());
        let keys = [sk.verifying_key()];
        let forged = format!("{input}.{}", b64url(&bad));
        assert_eq!(
            verify_signature_only(&keys, &forged),
            Err(TokenError::BadSignature)
        );
        let mut edited = id_claims();
        edited["sub"] = json!("usr_2");
        let forged = format!(
            "{}.{}.{}",
            token.split('.').next().unwrap(),
            b64json(&edited),
            token.rsplit('.').next().unwrap()
        );
        assert_eq!(
            verify_signature_only(&keys, &forged),
            Err(TokenError::BadSignature)
        );
        // Expired (exp < NOW) and an audience array: the signature-only check does not care.
        assert_eq!(verify_signature_only(&keys, &token).unwrap(), id_claims());
        // An access-token check refuses the same token: not AccessClaims.
        assert_eq!(check(&keys, &token), Err(TokenError::Malformed));
    }

    #[test]
    fn sign_json_is_rs256_only_and_takes_objects() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            assert!(matches!(
                key(alg).sign_json(&id_claims()),
                Err(TokenError::Key(_))
            ));
        }
        let sk = key(Algorithm::RS256);
        assert_eq!(sk.sign_json(&json!([1])), Err(TokenError::Malformed));
        assert_eq!(sk.sign_json(&json!("x")), Err(TokenError::Malformed));
        // RS256 access tokens go through the same ring signer.
        let token = sk.sign(&claims()).unwrap();
        assert_eq!(part(&token, 1), serde_json::to_value(claims()).unwrap());
        let mut c = claims();
        c.exp = -1;
        assert_eq!(sk.sign(&c), Err(TokenError::Malformed));
    }

    #[test]
    fn verify_signature_only_refuses_other_keys_and_algs() {
        let rs = key(Algorithm::RS256);
        let ed = key(Algorithm::EdDSA);
        let token = rs.sign_json(&id_claims()).unwrap();
        assert_eq!(
            verify_signature_only(&[ed.verifying_key()], &token),
            Err(TokenError::UnknownKey)
        );
        let payload = token.split('.').nth(1).unwrap();
        let sig = token.rsplit('.').next().unwrap();
        for alg in ["none", "HS256", "RS512", "PS256", "EdDSA"] {
            let h = b64json(&json!({"alg": alg, "typ": "JWT", "kid": rs.kid()}));
            assert_eq!(
                verify_signature_only(&[rs.verifying_key()], &format!("{h}.{payload}.{sig}")),
                Err(TokenError::BadSignature),
                "{alg}"
            );
        }
        let list = rs.sign_json(&json!({"a": 1})).unwrap();
        assert!(verify_signature_only(&[rs.verifying_key()], &list).is_ok());
    }

    #[test]
    fn rs256_loads_pkcs1_and_stores_pkcs8() {
        let sk = key(Algorithm::RS256);
        let pkcs8 = sk.private_bytes();
        // PKCS#8 v1 of a 2048-bit key: SEQUENCE { 0, rsaEncryption, OCTET STRING { PKCS#1 } }.
        assert_eq!(&pkcs8[4..7], &[0x02, 0x01, 0x00]);
        assert_eq!(&pkcs8[22..24], &[0x04, 0x82]);
        let pkcs1 = &pkcs8[26..];
        assert_eq!(
            usize::from(pkcs8[24]) << 8 | usize::from(pkcs8[25]),
            pkcs1.len()
        );
        let loaded = SigningKey::from_private_bytes(Algorithm::RS256, pkcs1).unwrap();
        assert_eq!(loaded.kid(), sk.kid());
        assert_eq!(loaded.private_bytes(), pkcs8, "re-encoded as PKCS#8");
        assert_eq!(
            loaded.sign_json(&id_claims()).unwrap(),
            sk.sign_json(&id_claims()).unwrap()
        );
        // A truncated or edited key is refused.
        assert!(
            SigningKey::from_private_bytes(Algorithm::RS256, &pkcs8[..pkcs8.len() - 1]).is_err()
        );
        let mut edited = pkcs8.clone();
        edited[100] ^= 1;
        assert!(SigningKey::from_private_bytes(Algorithm::RS256, &edited).is_err());
    }

    #[test]
    fn rs256_jwk_carries_a_certificate_over_the_key() {
        let sk = key(Algorithm::RS256);
        let jwk = sk.publishable_jwk(NOW * 1000).unwrap();
        let chain = jwk["x5c"].as_array().unwrap();
        assert_eq!(chain.len(), 1);
        let der = base64::engine::general_purpose::STANDARD
            .decode(chain[0].as_str().unwrap())
            .unwrap();
        assert_eq!(der[0], 0x30, "a DER SEQUENCE");
        assert_eq!(jwk["x5t#S256"], b64url(&sha256(&der)));
        assert_eq!(jwk["kid"], sk.kid(), "the thumbprint ignores x5c");
        // A stored JWK with x5c loads and publishes the same members.
        let vk = VerifyingKey::from_jwk(&jwk).unwrap();
        assert!(vk.has_certificate());
        assert_eq!(vk.public_jwk(), jwk);
        assert!(!sk.verifying_key().has_certificate());
        // Other algorithms publish no certificate.
        assert_eq!(
            key(Algorithm::EdDSA).publishable_jwk(0).unwrap(),
            key(Algorithm::EdDSA).public_jwk()
        );

        // A certificate over another key, a wrong x5t#S256, or x5c on an EdDSA key: refused.
        let other = SigningKey::generate(Algorithm::RS256)
            .publishable_jwk(0)
            .unwrap();
        let mut swapped = jwk.clone();
        swapped["x5c"] = other["x5c"].clone();
        swapped.as_object_mut().unwrap().remove("x5t#S256");
        assert!(VerifyingKey::from_jwk(&swapped).is_err());
        let mut wrong = jwk.clone();
        wrong["x5t#S256"] = other["x5t#S256"].clone();
        assert!(VerifyingKey::from_jwk(&wrong).is_err());
        let mut ed = key(Algorithm::EdDSA).public_jwk();
        ed["x5c"] = jwk["x5c"].clone();
        assert!(VerifyingKey::from_jwk(&ed).is_err());
        for bad in [json!("abc"), json!([]), json!(["%%%"])] {
            let mut j = jwk.clone();
            j["x5c"] = bad.clone();
            assert!(VerifyingKey::from_jwk(&j).is_err(), "{bad}");
        }
    }

    fn part(token: &str, i: usize) -> Value {
        let p = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&b64url_decode(p).unwrap()).unwrap()
    }

    fn check(keys: &[VerifyingKey], token: &str) -> Result<AccessClaims, TokenError> {
        verify(keys, token, ISS, AUD, NOW)
    }

    #[test]
    fn algorithm_names() {
        for a in ALGS {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
        }
        assert_eq!(Algorithm::parse("eddsa"), Some(Algorithm::EdDSA));
        assert_eq!(Algorithm::parse("HS256"), None);
        assert_eq!(Algorithm::parse("none"), None);
    }

    #[test]
    fn rfc7638_rsa_thumbprint() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256"
        });
        let k = VerifyingKey::from_jwk(&jwk).unwrap();
        assert_eq!(k.kid(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(k.alg(), Algorithm::RS256);
        assert_eq!(k.public_jwk()["n"], jwk["n"]);
        assert_eq!(k.public_jwk()["e"], "AQAB");

        // The RFC's own kid is not a thumbprint: refused rather than silently renamed.
        let mut named = jwk.clone();
        named["kid"] = json!("2011-04-29");
        assert!(matches!(
            VerifyingKey::from_jwk(&named),
            Err(TokenError::Key(_))
        ));
    }

    #[test]
    fn rfc8037_ed25519_thumbprint_and_seed() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let kid = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
        let k = VerifyingKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": x})).unwrap();
        assert_eq!(k.kid(), kid);
        assert_eq!(k.alg(), Algorithm::EdDSA);

        // RFC 8037 A.1 private key "d" (the seed), as PKCS#8: the public key is derived.
        let seed = b64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let sk = SigningKey::from_private_bytes(Algorithm::EdDSA, &der).unwrap();
        assert_eq!(sk.kid(), kid);
        assert_eq!(sk.public_jwk()["x"], x);
        assert_eq!(sk.private_bytes(), der);
    }

    #[test]
    fn sign_verify_roundtrip_each_alg() {
        for alg in ALGS {
            let sk = key(alg);
            assert_eq!(sk.alg(), alg);
            let token = sk.sign(&claims()).unwrap();
            let got = check(&[sk.verifying_key()], &token).unwrap();
            assert_eq!(got, claims(), "{alg:?}");

            let header = part(&token, 0);
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["typ"], "JWT");
            assert_eq!(header["kid"], sk.kid());
        }
    }

    #[test]
    fn payload_has_exactly_the_documented_claims() {
        let token = key(Algorithm::EdDSA).sign(&claims()).unwrap();
        let payload = part(&token, 1);
        let mut names: Vec<&str> = payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "amr",
                "aud",
                "email",
                "email_verified",
                "exp",
                "iat",
                "iss",
                "jti",
                "org_id",
                "org_role",
                "org_slug",
                "sid",
                "sub"
            ]
        );
        assert_eq!(payload, serde_json::to_value(claims()).unwrap());
        assert_eq!(payload["aud"], AUD);
        assert_eq!(payload["iat"], NOW);
        assert_eq!(payload["exp"], NOW + 900);
    }

    #[test]
    fn private_bytes_roundtrip() {
        for alg in ALGS {
            let sk = key(alg);
            let loaded = SigningKey::from_private_bytes(alg, &sk.private_bytes()).unwrap();
            assert_eq!(loaded.kid(), sk.kid());
            assert_eq!(loaded.public_jwk(), sk.public_jwk());
            let token = loaded.sign(&claims()).unwrap();
            assert!(check(&[sk.verifying_key()], &token).is_ok(), "{alg:?}");
            // Retired keys: only the stored public JWK remains.
            let from_jwk = VerifyingKey::from_jwk(&sk.public_jwk()).unwrap();
            assert_eq!(from_jwk.kid(), sk.kid());
            assert_eq!(from_jwk.alg(), alg);
            assert!(check(&[from_jwk], &token).is_ok(), "{alg:?}");
        }
    }

    #[test]
    fn from_private_bytes_rejects_garbage_and_wrong_alg() {
        for alg in ALGS {
            assert!(matches!(
                SigningKey::from_private_bytes(alg, b"not a key"),
                Err(TokenError::Key(_))
            ));
            assert!(SigningKey::from_private_bytes(alg, &[]).is_err());
        }
        let ed = key(Algorithm::EdDSA).private_bytes();
        assert!(SigningKey::from_private_bytes(Algorithm::ES256, &ed).is_err());
        assert!(SigningKey::from_private_bytes(Algorithm::RS256, &ed).is_err());
        let es = key(Algorithm::ES256).private_bytes();
        assert!(SigningKey::from_private_bytes(Algorithm::EdDSA, &es).is_err());
    }

    #[test]
    fn jwks_has_only_public_members() {
        let keys: Vec<VerifyingKey> = ALGS.iter().map(|a| key(*a).verifying_key()).collect();
        let doc = jwks(&keys);
        let list = doc["keys"].as_array().unwrap();
        assert_eq!(list.len(), 3);
        for (jwk, k) in list.iter().zip(&keys) {
            let obj = jwk.as_object().unwrap();
            for m in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(!obj.contains_key(m), "{m} in {jwk}");
            }
            assert_eq!(jwk["kid"], k.kid());
            assert_eq!(jwk["alg"], k.alg().as_str());
            assert_eq!(jwk["use"], "sig");
        }
        assert_eq!(list[0]["kty"], "OKP");
        assert_eq!(list[0]["crv"], "Ed25519");
        assert_eq!(
            b64url_decode(list[0]["x"].as_str().unwrap()).unwrap().len(),
            32
        );
        assert_eq!(list[1]["kty"], "EC");
        assert_eq!(list[1]["crv"], "P-256");
        assert_eq!(
            b64url_decode(list[1]["x"].as_str().unwrap()).unwrap().len(),
            32
        );
        assert_eq!(
            b64url_decode(list[1]["y"].as_str().unwrap()).unwrap().len(),
            32
        );
        assert_eq!(list[2]["kty"], "RSA");
        assert_eq!(list[2]["e"], "AQAB");
        let n = b64url_decode(list[2]["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
    }

    #[test]
    fn from_jwk_refuses_private_and_inconsistent_jwks() {
        let mut jwk = key(Algorithm::EdDSA).public_jwk();
        jwk["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        assert!(VerifyingKey::from_jwk(&jwk).is_err());

        let mut jwk = key(Algorithm::ES256).public_jwk();
        jwk["alg"] = json!("RS256");
        assert!(VerifyingKey::from_jwk(&jwk).is_err());

        let mut jwk = key(Algorithm::ES256).public_jwk();
        jwk["y"] = jwk["x"].clone(); // almost surely not on the curve
        assert!(VerifyingKey::from_jwk(&jwk).is_err());

        for bad in [
            json!(null),
            json!([]),
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
            json!({"kty": "OKP", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
            json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            json!({"kty": "RSA", "n": 5, "e": "AQAB"}),
        ] {
            assert!(VerifyingKey::from_jwk(&bad).is_err(), "{bad}");
        }
    }

    fn b64json(v: &Value) -> String {
        b64url(v.to_string().as_bytes())
    }

    #[test]
    fn refuses_alg_none() {
        for alg in ALGS {
            let sk = key(alg);
            let token = sk.sign(&claims()).unwrap();
            let header = json!({"alg": "none", "typ": "JWT", "kid": sk.kid()});
            let payload = token.split('.').nth(1).unwrap();
            let keys = [sk.verifying_key()];
            for forged in [
                format!("{}.{payload}.", b64json(&header)),
                format!("{}.{payload}", b64json(&header)),
                format!(
                    "{}.{payload}.{}",
                    b64json(&header),
                    token.split('.').nth(2).unwrap()
                ),
            ] {
                assert!(check(&keys, &forged).is_err(), "{alg:?}: {forged}");
            }
        }
    }

    #[test]
    fn refuses_hs256_with_public_key_as_secret() {
        for alg in ALGS {
            let sk = key(alg);
            let jwk = sk.public_jwk();
            let token = sk.sign(&claims()).unwrap();
            let payload = token.split('.').nth(1).unwrap();
            let header = b64json(&json!({"alg": "HS256", "typ": "JWT", "kid": sk.kid()}));
            let input = format!("{header}.{payload}");
            // Try the usual confusions: the JWK text, each public member, the thumbprint.
            let mut secrets: Vec<Vec<u8>> = vec![jwk.to_string().into_bytes()];
            for m in ["x", "y", "n"] {
                if let Some(s) = jwk[m].as_str() {
                    secrets.push(s.as_bytes().to_vec());
                    secrets.push(b64url_decode(s).unwrap());
                }
            }
            secrets.push(sk.kid().as_bytes().to_vec());
            for secret in secrets {
                let mac = hmac_sha256(&secret, input.as_bytes());
                let forged = format!("{input}.{}", b64url(&mac));
                assert_eq!(
                    check(&[sk.verifying_key()], &forged),
                    Err(TokenError::BadSignature)
                );
            }
            // Same header alg swap with the real signature kept.
            let forged = format!("{input}.{}", token.split('.').nth(2).unwrap());
            assert_eq!(
                check(&[sk.verifying_key()], &forged),
                Err(TokenError::BadSignature)
            );
        }
    }

    #[test]
    fn refuses_cross_algorithm_header() {
        // An ES256 key must not accept a token whose header claims EdDSA, even with the same kid.
        let es = key(Algorithm::ES256);
        let ed = key(Algorithm::EdDSA);
        let token = ed.sign(&claims()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[0] = b64json(&json!({"alg": "EdDSA", "typ": "JWT", "kid": es.kid()}));
        assert_eq!(
            check(&[es.verifying_key()], &parts.join(".")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn refuses_edited_payload() {
        for alg in ALGS {
            let sk = key(alg);
            let token = sk.sign(&claims()).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            let mut edited = claims();
            edited.org_role = "admin".into();
            let payload = b64url(serde_json::to_string(&edited).unwrap().as_bytes());
            let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
            assert_eq!(
                check(&[sk.verifying_key()], &forged),
                Err(TokenError::BadSignature)
            );
            // Flipped signature bits.
            let mut sig = b64url_decode(parts[2]).unwrap();
            sig[0] ^= 1;
            let forged = format!("{}.{}.{}", parts[0], parts[1], b64url(&sig));
            assert_eq!(
                check(&[sk.verifying_key()], &forged),
                Err(TokenError::BadSignature)
            );
        }
    }

    #[test]
    fn refuses_truncated_and_garbage() {
        for alg in ALGS {
            let sk = key(alg);
            let keys = [sk.verifying_key()];
            let token = sk.sign(&claims()).unwrap();
            for cut in [1, 2, 3, 4, 5, 10, 50] {
                assert!(
                    check(&keys, &token[..token.len() - cut]).is_err(),
                    "{alg:?} cut {cut}"
                );
            }
            // Signature shortened or lengthened by whole bytes.
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig = b64url_decode(sig).unwrap();
            for forged in [&sig[..sig.len() - 1], &[sig.as_slice(), &[0]].concat(), &[]] {
                let forged = format!("{input}.{}", b64url(forged));
                assert!(check(&keys, &forged).is_err(), "{alg:?}");
            }
        }
        let sk = key(Algorithm::EdDSA);
        let keys = [sk.verifying_key()];
        let token = sk.sign(&claims()).unwrap();
        let last_dot = token.rfind('.').unwrap();
        assert!(check(&keys, &token[..last_dot]).is_err());
        assert!(check(&keys, &token[..last_dot + 1]).is_err());
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        // What would be refused on reading is not signed: claims over the limit, with every
        // algorithm (claims of half the limit still round-trip).
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let sk = key(alg);
            let mut big = claims();
            big.email = "\u{1}".repeat(MAX_TOKEN_LEN / 8);
            assert_eq!(sk.sign(&big), Err(TokenError::Malformed), "{alg:?}");
            if alg == Algorithm::RS256 {
                let mut json = serde_json::to_value(&big).unwrap();
                json["email"] = Value::String("x".repeat(MAX_TOKEN_LEN));
                assert_eq!(sk.sign_json(&json), Err(TokenError::Malformed));
            }
            big.email = "x".repeat(MAX_TOKEN_LEN / 2);
            let token = sk.sign(&big).unwrap();
            assert_eq!(
                check(&[sk.verifying_key()], &token).map(|c| c.email),
                Ok(big.email)
            );
        }
        let nested = format!("{}.e30.AA", b64url(&[b'['; 4000]));
        for bad in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "a.b.c.d",
            "e30.e30.e30",
            "W10.e30.AA",
            "bnVsbA.e30.AA",
            &format!("{token}.x"),
            &format!("{token}x"),
            &long,
            &nested,
            "\u{1F600}.\u{1F600}.\u{1F600}",
        ] {
            assert!(check(&keys, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_expired_by_callers_clock() {
        let sk = key(Algorithm::EdDSA);
        let keys = [sk.verifying_key()];
        let token = sk.sign(&claims()).unwrap();
        let exp = NOW + 900;
        assert!(verify(&keys, &token, ISS, AUD, exp - 1).is_ok());
        assert_eq!(
            verify(&keys, &token, ISS, AUD, exp),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&keys, &token, ISS, AUD, exp + 3600),
            Err(TokenError::Expired)
        );
        // A token from the far past (library's real clock would also say expired) and one
        // far in the future: only the caller's clock counts.
        let mut old = claims();
        old.iat = 1_000;
        old.exp = 1_900;
        let token = sk.sign(&old).unwrap();
        assert!(verify(&keys, &token, ISS, AUD, 1_500).is_ok());
        assert_eq!(
            verify(&keys, &token, ISS, AUD, NOW),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn ignoring_expiry_still_checks_everything_else() {
        let sk = key(Algorithm::EdDSA);
        let keys = [sk.verifying_key()];
        let token = sk.sign(&claims()).unwrap();
        let exp = NOW + 900;
        // Expired, yet genuine: accepted, at the caller's clock.
        let c = verify_ignoring_expiry(&keys, &token, ISS, AUD, exp + 86_400).unwrap();
        assert_eq!(c.sid, claims().sid);
        // Everything else is refused as by `verify`.
        let other = key(Algorithm::ES256);
        assert_eq!(
            verify_ignoring_expiry(&[other.verifying_key()], &token, ISS, AUD, exp),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            verify_ignoring_expiry(&keys, &token, "https://evil.test", AUD, exp),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            verify_ignoring_expiry(&keys, &token, ISS, "other", exp),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            verify_ignoring_expiry(&keys, &token, ISS, AUD, NOW - FUTURE_SKEW_SECS - 1),
            Err(TokenError::NotYetValid)
        );
        let (input, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{input}.{}", b64url(&[0u8; 64]));
        assert_eq!(
            verify_ignoring_expiry(&keys, &forged, ISS, AUD, exp),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn refuses_future_iat_beyond_skew() {
        let sk = key(Algorithm::EdDSA);
        let keys = [sk.verifying_key()];
        let token = sk.sign(&claims()).unwrap();
        assert!(verify(&keys, &token, ISS, AUD, NOW - FUTURE_SKEW_SECS).is_ok());
        assert_eq!(
            verify(&keys, &token, ISS, AUD, NOW - FUTURE_SKEW_SECS - 1),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn refuses_negative_times_on_signing() {
        let mut c = claims();
        c.iat = -1;
        assert_eq!(key(Algorithm::EdDSA).sign(&c), Err(TokenError::Malformed));
    }

    #[test]
    fn refuses_wrong_issuer_and_audience() {
        for alg in ALGS {
            let sk = key(alg);
            let keys = [sk.verifying_key()];
            let token = sk.sign(&claims()).unwrap();
            assert_eq!(
                verify(&keys, &token, "https://evil.example.com", AUD, NOW),
                Err(TokenError::WrongIssuer)
            );
            assert_eq!(
                verify(&keys, &token, ISS, "other", NOW),
                Err(TokenError::WrongAudience)
            );
        }
    }

    #[test]
    fn refuses_unknown_or_missing_kid() {
        let ed = key(Algorithm::EdDSA);
        let es = key(Algorithm::ES256);
        let token = ed.sign(&claims()).unwrap();
        assert_eq!(
            check(&[es.verifying_key()], &token),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(check(&[], &token), Err(TokenError::UnknownKey));
        // Picks the right key among several (rotation: current + retired).
        let other_ed = SigningKey::generate(Algorithm::EdDSA);
        let keys = [
            es.verifying_key(),
            other_ed.verifying_key(),
            ed.verifying_key(),
        ];
        assert!(check(&keys, &token).is_ok());

        // kid removed from the header, or swapped for another key's kid.
        let parts: Vec<&str> = token.split('.').collect();
        let no_kid = b64json(&json!({"alg": "EdDSA", "typ": "JWT"}));
        assert_eq!(
            check(&keys, &format!("{no_kid}.{}.{}", parts[1], parts[2])),
            Err(TokenError::UnknownKey)
        );
        let swapped = b64json(&json!({"alg": "EdDSA", "typ": "JWT", "kid": other_ed.kid()}));
        assert_eq!(
            check(&keys, &format!("{swapped}.{}.{}", parts[1], parts[2])),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn verifying_key_debug_shows_no_key_material() {
        let sk = key(Algorithm::RS256);
        let dbg = format!("{sk:?} {:?}", sk.verifying_key());
        assert!(dbg.contains(sk.kid()));
        assert!(dbg.len() < 200, "{dbg}");
    }

    /// Manual interop check (not run by default): writes a token and JWKS per algorithm to
    /// `$LATCHKEY_JWT_OUT` (e.g. for PyJWT). `LATCHKEY_JWT_OUT=/tmp/jwt cargo test -- --ignored`.
    #[test]
    #[ignore]
    fn write_interop_samples() {
        let Ok(dir) = std::env::var("LATCHKEY_JWT_OUT") else {
            return;
        };
        std::fs::create_dir_all(&dir).unwrap();
        let now = crate::clock::Clock::now_secs(&crate::clock::SystemClock);
        let mut c = claims();
        c.iat = now;
        c.exp = now + 900;
        for alg in ALGS {
            let sk = key(alg);
            let token = sk.sign(&c).unwrap();
            let doc = jwks(&[sk.verifying_key()]);
            std::fs::write(format!("{dir}/{}.jwt", alg.as_str()), token).unwrap();
            std::fs::write(format!("{dir}/{}.jwks.json", alg.as_str()), doc.to_string()).unwrap();
        }
    }
}
