// openid-client 6.9.0 as a relying party of Latchkey (driven by tests/browser/test_oidc.py).
//
//   node rp.mjs code    ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
//   node rp.mjs device  ISSUER CLIENT_ID
//
// The person's part (signing in, consenting, approving a device) happens in Chromium, driven
// by the Python side: this script talks to it in JSON lines. It writes a line when the browser
// has something to do ({"step":"authorize","url":…} or {"step":"device",…}), reads the
// callback URL back on stdin (code flow), and ends with {"step":"done",…} carrying what the
// library returned. Any error ends it with {"step":"error",…} and exit code 1.
import * as client from "openid-client";
import { createInterface } from "node:readline";

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const hear = async () => {
  const { value, done } = await lines.next();
  if (done) throw new Error("stdin closed before the browser answered");
  return JSON.parse(value);
};
// Only the issuer URL, the client id (and secret) and the redirect URI are configured:
// everything else comes from the discovery document.
const insecure = { execute: [client.allowInsecureRequests] };

async function codeFlow([issuer, clientId, clientSecret, redirectUri]) {
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, insecure);
  const meta = config.serverMetadata();
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: "openid profile email offline_access",
    code_challenge: challenge,
    code_challenge_method: "S256",
    nonce,
    state,
  });
  say({ step: "authorize", url: url.href });
  const { callback } = await hear();

  // Checks state, iss (authorization_response_iss_parameter_supported), the PKCE verifier,
  // and the id_token's iss, aud, exp, iat, nonce and its alg (RS256 by default).
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const idHeader = JSON.parse(Buffer.from(tokens.id_token.split(".")[0], "base64url"));
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const introspected = await client.tokenIntrospection(config, tokens.access_token);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const userinfoAfterRefresh = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
  await client.tokenRevocation(config, refreshed.access_token, { token_type_hint: "access_token" });
  const introspectedAfterRevoke = await client.tokenIntrospection(config, refreshed.access_token);
  let userinfoAfterRevoke;
  try {
    await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
    userinfoAfterRevoke = "accepted";
  } catch (e) {
    userinfoAfterRevoke = { name: e.name, code: e.code, status: e.status ?? e.cause?.status };
  }
  await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: "refresh_token" });
  let refreshAfterRevoke;
  try {
    await client.refreshTokenGrant(config, refreshed.refresh_token);
    refreshAfterRevoke = "accepted";
  } catch (e) {
    refreshAfterRevoke = { name: e.name, error: e.error };
  }
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token ?? tokens.id_token,
  });
  say({
    step: "done",
    issuer: meta.issuer,
    state,
    nonce,
    tokenType: tokens.token_type,
    scope: tokens.scope,
    expiresIn: tokens.expiresIn(),
    idHeader,
    claims,
    userinfo,
    introspected,
    refreshedClaims: refreshed.claims() ?? null,
    refreshRotated: refreshed.refresh_token !== tokens.refresh_token,
    userinfoAfterRefresh,
    introspectedAfterRevoke,
    userinfoAfterRevoke,
    refreshAfterRevoke,
    endSession: endSession.href,
  });
}

async function deviceFlow([issuer, clientId]) {
  // A public client (a CLI): no secret, client authentication `none`.
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), insecure);
  const started = await client.initiateDeviceAuthorization(config, {
    scope: "openid email offline_access",
  });
  say({ step: "device", ...started });
  // Polls at the server's interval, slowing down when told to, until the person decides.
  const tokens = await client.pollDeviceAuthorizationGrant(config, started);
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  say({
    step: "done",
    tokenType: tokens.token_type,
    scope: tokens.scope,
    hasRefresh: typeof tokens.refresh_token === "string",
    claims,
    userinfo,
  });
}

const [mode, ...args] = process.argv.slice(2);
const flows = { code: codeFlow, device: deviceFlow };
try {
  if (!flows[mode]) throw new Error(`unknown mode ${mode}`);
  await flows[mode](args);
  process.exit(0);
} catch (e) {
  say({
    step: "error",
    name: e?.name,
    message: e?.message,
    code: e?.code,
    error: e?.error,
    error_description: e?.error_description,
    status: e?.status ?? e?.cause?.status,
    cause: e?.cause instanceof Error ? e.cause.message : e?.cause,
  });
  process.exit(1);
}
