// The official Node SDK (@workos-inc/node 8.13.0) run through the calls of issue 16 against
// WORKOS_BASE_URL. Prints one JSON line per call: {"call","ok","skipped","error"}; a call whose
// inputs an earlier call failed to produce is skipped. Writes the same records as a JSON array to
// $WORKOS_RESULTS_NODE (default ../out/<target>-node.json). Exit 1 if a call failed.
// The browser (hosted sign-in, device approval) and Latchkey-only fixtures come from ../wk.py.
import { WorkOS, NotFoundException } from '@workos-inc/node';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const BASE = new URL(env.WORKOS_BASE_URL || 'http://127.0.0.1:8080');
const KEY = env.WORKOS_API_KEY;
const CLIENT_ID = env.WORKOS_CLIENT_ID;
const REDIRECT_URI = env.WORKOS_REDIRECT_URI || 'http://127.0.0.1:8765/callback';
const RETURN_TO = env.WORKOS_LOGOUT_RETURN_TO || REDIRECT_URI;
const TARGET = env.WORKOS_TARGET || 'latchkey';
const RUN = env.WORKOS_RUN_ID || randomBytes(4).toString('hex');
const PASSWORD = env.WORKOS_TEST_PASSWORD || 'Harness-pw-7731-quartz';
const DOMAIN = env.WORKOS_EMAIL_DOMAIN || 'example.com';
const ROLE = env.WORKOS_ROLE_SLUG || 'member';
const ROLE_ALT = env.WORKOS_ROLE_SLUG_ALT || 'admin';
const PY = env.WORKOS_PYTHON || join(here, '..', '.venv', 'bin', 'python');
const email = (tag) => `${tag}-${RUN}-n@${DOMAIN}`;
const COOKIE_PW = randomBytes(24).toString('hex'); // iron needs ≥ 32 characters

const workos = new WorkOS(KEY, {
  apiHostname: BASE.hostname,
  port: BASE.port ? Number(BASE.port) : undefined,
  https: BASE.protocol === 'https:',
  clientId: CLIENT_ID,
});
const um = workos.userManagement;

function py(...args) {
  // wk.py's own RUN id is unrelated; it only drives the browser and the fixtures
  const r = spawnSync(PY, [join(here, '..', 'wk.py'), ...args], { env, encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) throw new Error(`wk.py ${args[0]}: ${(r.stderr || '').trim().split('\n').pop()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const S = {};
const results = [];
function record(call, ok, skipped, error) {
  const rec = { call, ok, skipped, error: error ?? null };
  results.push(rec);
  console.log(JSON.stringify(rec));
}
function describe(e) {
  if (!e) return String(e);
  const parts = [e.name || 'Error', e.status ?? '', e.message || ''];
  if (e.rawData) parts.push(JSON.stringify(e.rawData).slice(0, 300));
  if (e.error) parts.push(e.error);
  return parts.filter((x) => x !== '').join(' ').slice(0, 500);
}
async function step(call, needs, fn) {
  const missing = needs.filter((n) => !(n in S));
  if (missing.length) return record(call, false, true, `needs ${missing.join(', ')} from an earlier call`);
  try {
    await fn();
    record(call, true, false, null);
  } catch (e) {
    if (e && e.skip) return record(call, false, true, e.skip);
    record(call, false, false, describe(e));
  }
}
function notInSdk(call) {
  record(call, false, true, 'not in @workos-inc/node 8.13.0');
}
function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}
async function expect403(fn, code) {
  try {
    await fn();
  } catch (e) {
    const body = e.rawData || {};
    assert(e.status === 403, `expected 403 ${code}, got ${describe(e)}`);
    assert((body.code || body.error) === code, `expected ${code}, got ${JSON.stringify(body)}`);
    assert(body.pending_authentication_token, 'no pending_authentication_token');
    return body;
  }
  throw new Error(`expected 403 ${code}, the call succeeded`);
}
async function expectFail(fn, what) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error(`expected ${what} to fail, it succeeded`);
}
async function expect404(fn) {
  const e = await expectFail(fn, 'a 404');
  assert(e instanceof NotFoundException, `expected NotFoundException, got ${describe(e)}`);
}
const decode = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
const signIn = (em, pw = PASSWORD, extra = {}) => um.authenticateWithPassword({ email: em, password: pw, ...extra });
const newUser = (tag, verified = true, extra = {}) =>
  um.createUser({ email: email(tag), password: PASSWORD, firstName: 'Harness', lastName: tag, emailVerified: verified, ...extra });
// seat a user for a later call, raw (the SDK call is tested in its own step)
async function member(userId, organizationId, roleSlug = ROLE) {
  const { data } = await workos.post('/user_management/organization_memberships', { user_id: userId, organization_id: organizationId, role_slug: roleSlug });
  return data;
}
function totp(secret) {
  const r = spawnSync(PY, ['-c', 'import sys,pyotp,time; print(pyotp.TOTP(sys.argv[1]).at(time.time()+float(sys.argv[2])))', secret, String(totp.off[secret] ?? 0)], { encoding: 'utf8' });
  totp.off[secret] = (totp.off[secret] ?? 0) === 0 ? 30 : totp.off[secret] === 30 ? -30 : 0;
  if (r.status !== 0) throw new Error(`pyotp: ${r.stderr}`);
  return r.stdout.trim();
}
totp.off = {};

// --- organizations -------------------------------------------------------------------------
await step('organizations.createOrganization', [], async () => {
  const dom = `${RUN}-na.${DOMAIN}`;
  const o = await workos.organizations.createOrganization({
    name: `Harness NA ${RUN}`, externalId: `ext-norg-${RUN}`, metadata: { tier: 'gold' },
    domainData: [{ domain: dom, state: 'verified' }],
  });
  assert(o.id && o.externalId === `ext-norg-${RUN}`, `externalId ${o.externalId}`);
  assert(o.domains.map((d) => d.domain).join() === dom, `domains ${JSON.stringify(o.domains)}`);
  S.orgA = o.id; S.orgADomain = dom;
});
await step('organizations.getOrganization', ['orgA'], async () => {
  const o = await workos.organizations.getOrganization(S.orgA);
  assert(o.id === S.orgA && o.domains[0]?.organizationId === S.orgA, JSON.stringify(o.domains));
});
await step('organizations.getOrganizationByExternalId', ['orgA'], async () => {
  assert((await workos.organizations.getOrganizationByExternalId(`ext-norg-${RUN}`)).id === S.orgA, 'id');
});
await step('organizations.updateOrganization', ['orgA'], async () => {
  const o = await workos.organizations.updateOrganization({ organization: S.orgA, name: `Harness NA2 ${RUN}`, metadata: { tier: 'platinum' } });
  assert(o.name === `Harness NA2 ${RUN}` && o.metadata.tier === 'platinum', JSON.stringify(o));
});
await step('organizations.listOrganizations', ['orgA'], async () => {
  const list = await workos.organizations.listOrganizations({ limit: 100 });
  const all = list.listMetadata?.after ? await (await workos.organizations.listOrganizations()).autoPagination() : list.data;
  assert(all.some((o) => o.id === S.orgA), 'org not listed');
});
await step('organizations.listOrganizations(domains)', ['orgA'], async () => {
  const list = await workos.organizations.listOrganizations({ domains: [S.orgADomain] });
  assert(list.data.map((o) => o.id).join() === S.orgA, JSON.stringify(list.data.map((o) => o.id)));
});
await step('organizations.createOrganization(second)', [], async () => {
  S.orgB = (await workos.organizations.createOrganization({ name: `Harness NB ${RUN}` })).id;
});

// --- users ---------------------------------------------------------------------------------
await step('userManagement.createUser', [], async () => {
  const u = await newUser('main', true, { externalId: `ext-nusr-${RUN}` });
  assert(u.email === email('main') && u.emailVerified === true && u.externalId === `ext-nusr-${RUN}`, JSON.stringify(u));
  S.user = u.id; S.password = PASSWORD;
});
await step('userManagement.getUser', ['user'], async () => {
  assert((await um.getUser(S.user)).email === email('main'), 'email');
});
await step('userManagement.getUserByExternalId', ['user'], async () => {
  assert((await um.getUserByExternalId(`ext-nusr-${RUN}`)).id === S.user, 'id');
});
await step('userManagement.updateUser', ['user'], async () => {
  const u = await um.updateUser({ userId: S.user, firstName: 'Changed', externalId: `ext-nusr2-${RUN}` });
  assert(u.firstName === 'Changed' && u.externalId === `ext-nusr2-${RUN}`, JSON.stringify(u));
});
await step('userManagement.listUsers', ['user'], async () => {
  const list = await um.listUsers({ email: email('main') });
  assert(list.data.map((u) => u.id).join() === S.user, JSON.stringify(list.data.map((u) => u.id)));
});
await step('userManagement.createUser(passwordHash bcrypt)', [], async () => {
  const pw = 'Legacy-bcrypt-4471-pw';
  const r = spawnSync(PY, ['-c', 'import sys,bcrypt; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(10)).decode())', pw], { encoding: 'utf8' });
  const u = await um.createUser({ email: email('bcrypt'), emailVerified: true, passwordHash: r.stdout.trim(), passwordHashType: 'bcrypt' });
  S.bcryptUser = u.id; S.bcryptPw = pw;
});

// --- memberships ---------------------------------------------------------------------------
await step('userManagement.createOrganizationMembership', ['user', 'orgA'], async () => {
  const m = await um.createOrganizationMembership({ userId: S.user, organizationId: S.orgA, roleSlug: ROLE });
  S.mem = m.id;
  assert(m.userId === S.user && m.organizationId === S.orgA && m.status === 'active' && m.role?.slug === ROLE, JSON.stringify(m));
});
await step('userManagement.getOrganizationMembership', ['mem'], async () => {
  assert((await um.getOrganizationMembership(S.mem)).id === S.mem, 'id');
});
await step('userManagement.listOrganizationMemberships(userId)', ['mem'], async () => {
  const l = await um.listOrganizationMemberships({ userId: S.user });
  assert(l.data.map((m) => m.id).join() === S.mem, JSON.stringify(l.data.map((m) => m.id)));
});
await step('userManagement.listOrganizationMemberships(organizationId, statuses)', ['mem'], async () => {
  const l = await um.listOrganizationMemberships({ organizationId: S.orgA, statuses: ['active'] });
  assert(l.data.some((m) => m.id === S.mem), 'not listed');
});
await step('userManagement.updateOrganizationMembership', ['mem'], async () => {
  const m = await um.updateOrganizationMembership(S.mem, { roleSlug: ROLE_ALT });
  assert(m.role?.slug === ROLE_ALT, JSON.stringify(m.role));
});
await step('userManagement.deactivateOrganizationMembership', ['mem'], async () => {
  const m = await um.deactivateOrganizationMembership(S.mem);
  assert(m.status === 'inactive', m.status);
  const l = await um.listOrganizationMemberships({ organizationId: S.orgA, statuses: ['inactive'] });
  assert(l.data.some((x) => x.id === S.mem), 'not listed as inactive');
});
await step('userManagement.reactivateOrganizationMembership', ['mem'], async () => {
  assert((await um.reactivateOrganizationMembership(S.mem)).status === 'active', 'status');
});

// --- sign-in, tokens, sessions -------------------------------------------------------------
await step('userManagement.authenticateWithPassword', ['user'], async () => {
  const r = await signIn(email('main'), S.password);
  assert(r.user.id === S.user && r.accessToken && r.refreshToken, 'tokens');
  S.auth = r;
});
await step('authenticateWithPassword: organizationId of the sole membership', ['auth', 'mem'], async () => {
  assert(S.auth.organizationId === S.orgA, `organizationId ${S.auth.organizationId}`);
  assert(S.auth.authenticationMethod === 'Password', `authenticationMethod ${S.auth.authenticationMethod}`);
});
await step('GET /sso/jwks/{client_id} (getJwksUrl)', [], async () => {
  const res = await fetch(um.getJwksUrl(CLIENT_ID));
  assert(res.ok, `HTTP ${res.status}`);
  const j = await res.json();
  assert(j.keys?.length && j.keys.every((k) => k.kid && k.kty === 'RSA'), JSON.stringify(j).slice(0, 200));
});
await step('loadSealedSession().authenticate()', ['user'], async () => {
  const r = await signIn(email('main'), S.password, { session: { sealSession: true, cookiePassword: COOKIE_PW } });
  assert(r.sealedSession, 'no sealedSession');
  const a = await um.loadSealedSession({ sessionData: r.sealedSession, cookiePassword: COOKIE_PW }).authenticate();
  assert(a.authenticated, `not authenticated: ${a.reason}`);
  assert(a.sessionId && a.user?.id === S.user, JSON.stringify(a).slice(0, 200));
  S.sealed = r.sealedSession; S.claimsOrg = a.organizationId;
});
await step('loadSealedSession: org_id claim', ['sealed'], async () => {
  assert(S.claimsOrg === S.orgA, `org_id ${S.claimsOrg}`);
});
await step('loadSealedSession().refresh()', ['sealed'], async () => {
  const s = um.loadSealedSession({ sessionData: S.sealed, cookiePassword: COOKIE_PW });
  const r = await s.refresh();
  assert(r.authenticated, `refresh: ${r.reason}`);
  const a = await um.loadSealedSession({ sessionData: r.sealedSession, cookiePassword: COOKIE_PW }).authenticate();
  assert(a.authenticated, `after refresh: ${a.reason}`);
});
await step('userManagement.authenticateWithRefreshToken', ['user'], async () => {
  const r = await signIn(email('main'), S.password);
  const r2 = await um.authenticateWithRefreshToken({ refreshToken: r.refreshToken });
  assert(r2.user.id === S.user && r2.refreshToken && r2.refreshToken !== r.refreshToken, 'rotation');
});
await step('userManagement.listSessions', ['auth'], async () => {
  const sid = decode(S.auth.accessToken).sid;
  assert(sid, 'no sid claim');
  const l = await um.listSessions(S.user, { limit: 100 });
  const all = l.listMetadata?.after ? await l.autoPagination() : l.data;
  assert(all.some((x) => x.id === sid), 'session not listed');
});
await step('userManagement.revokeSession', ['user'], async () => {
  const r = await signIn(email('main'), S.password);
  await um.revokeSession({ sessionId: decode(r.accessToken).sid });
  await expectFail(() => um.authenticateWithRefreshToken({ refreshToken: r.refreshToken }), 'refresh of a revoked session');
});
await step('userManagement.getLogoutUrl', ['user'], async () => {
  const r = await signIn(email('main'), S.password);
  const url = um.getLogoutUrl({ sessionId: decode(r.accessToken).sid, returnTo: RETURN_TO });
  const res = await fetch(url, { redirect: 'manual' });
  assert([302, 303, 307].includes(res.status), `HTTP ${res.status}`);
  assert((res.headers.get('location') || '').startsWith(RETURN_TO), `Location ${res.headers.get('location')}`);
  await expectFail(() => um.authenticateWithRefreshToken({ refreshToken: r.refreshToken }), 'refresh after logout');
});
await step('authenticateWithPassword(bcrypt hash)', ['bcryptUser'], async () => {
  assert((await signIn(email('bcrypt'), S.bcryptPw)).user.id === S.bcryptUser, 'user');
  S.bcryptSignedIn = true;
});
await step('bcrypt hash rehashed to argon2id', ['bcryptSignedIn'], async () => {
  const { hash_prefix: p } = py('password-hash', S.bcryptUser);
  if (p === null) throw Object.assign(new Error('skip'), { skip: 'needs LATCHKEY_DB' });
  assert(p === '$argon2id$', `stored hash ${p}`);
});
await step('authenticateWithPassword(wrong password)', ['user'], async () => {
  await expectFail(() => signIn(email('main'), 'Wrong-password-9911'), 'a wrong password');
});

// --- magic auth, password reset ------------------------------------------------------------
await step('userManagement.createMagicAuth', ['user'], async () => {
  const m = await um.createMagicAuth({ email: email('main') });
  assert(m.userId === S.user && /^\d{6}$/.test(m.code), JSON.stringify(m));
  S.magic = m;
});
await step('userManagement.getMagicAuth', ['magic'], async () => {
  assert((await um.getMagicAuth(S.magic.id)).id === S.magic.id, 'id');
});
await step('userManagement.authenticateWithMagicAuth', ['magic'], async () => {
  assert((await um.authenticateWithMagicAuth({ code: S.magic.code, email: email('main') })).user.id === S.user, 'user');
});
await step('userManagement.createPasswordReset', ['user'], async () => {
  const p = await um.createPasswordReset({ email: email('main') });
  assert(p.userId === S.user && p.passwordResetToken && p.passwordResetUrl, JSON.stringify(p));
  S.reset = p;
});
await step('userManagement.getPasswordReset', ['reset'], async () => {
  assert((await um.getPasswordReset(S.reset.id)).id === S.reset.id, 'id');
});
await step('userManagement.resetPassword', ['reset'], async () => {
  const pw = 'Harness-reset-5520-pw';
  assert((await um.resetPassword({ token: S.reset.passwordResetToken, newPassword: pw })).user.id === S.user, 'user');
  S.password = pw;
  assert((await signIn(email('main'), pw)).user.id === S.user, 'sign-in with the new password');
});

// --- email verification --------------------------------------------------------------------
let verifyOrg = null;
try { verifyOrg = py('special-org', 'verify').id; } catch (e) { verifyOrg = null; }
async function unverified(tag) {
  const u = await newUser(tag, false);
  const org = verifyOrg || S.orgA;
  if (org) await member(u.id, org);
  return u;
}
await step('userManagement.sendVerificationEmail', [], async () => {
  const u = await unverified('verify1');
  S.verify1 = u.id;
  const r = await um.sendVerificationEmail({ userId: u.id });
  assert(r.user.id === u.id && r.user.emailVerified === false, JSON.stringify(r.user));
});
await step('authenticate → 403 email_verification_required', ['verify1'], async () => {
  const b = await expect403(() => signIn(email('verify1')), 'email_verification_required');
  assert(b.email_verification_id, 'no email_verification_id');
  S.ev1 = b;
});
await step('userManagement.getEmailVerification', ['ev1'], async () => {
  const v = await um.getEmailVerification(S.ev1.email_verification_id);
  assert(v.userId === S.verify1 && /^\d+$/.test(v.code), JSON.stringify(v));
  S.ev1Code = v.code;
});
await step('userManagement.authenticateWithEmailVerification', ['ev1Code'], async () => {
  const r = await um.authenticateWithEmailVerification({ code: S.ev1Code, pendingAuthenticationToken: S.ev1.pending_authentication_token });
  assert(r.user.id === S.verify1 && r.user.emailVerified === true, JSON.stringify(r.user));
});
await step('userManagement.verifyEmail', [], async () => {
  const u = await unverified('verify2');
  const b = await expect403(() => signIn(email('verify2')), 'email_verification_required');
  const { code } = await um.getEmailVerification(b.email_verification_id);
  const r = await um.verifyEmail({ userId: u.id, code });
  assert(r.user.emailVerified === true, 'not verified');
  assert((await signIn(email('verify2'))).user.id === u.id, 'sign-in after verification');
});

// --- MFA -----------------------------------------------------------------------------------
await step('userManagement.enrollAuthFactor', ['orgA'], async () => {
  const u = await newUser('mfa');
  await member(u.id, S.orgA);
  S.mfaUser = u.id;
  const r = await um.enrollAuthFactor({ userId: u.id, type: 'totp', totpIssuer: 'Harness', totpUser: email('mfa') });
  const f = r.authenticationFactor;
  const secret = f.totp?.secret || new URL(f.totp?.uri || 'x:/').searchParams.get('secret');
  S.factor = { id: f.id, secret, challenge: r.authenticationChallenge?.id };
  assert(f.type === 'totp' && f.totp?.secret && f.totp?.uri?.startsWith('otpauth://'), JSON.stringify(f));
  assert(r.authenticationChallenge?.authenticationFactorId === f.id, JSON.stringify(r.authenticationChallenge));
});
await step('mfa.verifyChallenge', ['factor'], async () => {
  const v = await workos.mfa.verifyChallenge({ authenticationChallengeId: S.factor.challenge, code: totp(S.factor.secret) });
  assert(v.valid === true, JSON.stringify(v));
});
await step('userManagement.listAuthFactors', ['factor'], async () => {
  assert((await um.listAuthFactors({ userId: S.mfaUser })).data.some((f) => f.id === S.factor.id), 'not listed');
});
await step('mfa.getFactor', ['factor'], async () => {
  const f = await workos.mfa.getFactor(S.factor.id);
  assert(f.id === S.factor.id && f.type === 'totp', JSON.stringify(f));
});
await step('authenticate → 403 mfa_challenge', ['factor'], async () => {
  const b = await expect403(() => signIn(email('mfa')), 'mfa_challenge');
  assert((b.authentication_factors || []).some((f) => f.id === S.factor.id), JSON.stringify(b.authentication_factors));
  S.mfaPending = b.pending_authentication_token;
});
await step('mfa.challengeFactor', ['mfaPending'], async () => {
  const ch = await workos.mfa.challengeFactor({ authenticationFactorId: S.factor.id });
  assert(ch.authenticationFactorId === S.factor.id, JSON.stringify(ch));
  S.mfaChallenge = ch.id;
});
await step('userManagement.authenticateWithTotp', ['mfaChallenge'], async () => {
  const r = await um.authenticateWithTotp({ code: totp(S.factor.secret), pendingAuthenticationToken: S.mfaPending, authenticationChallengeId: S.mfaChallenge });
  assert(r.user.id === S.mfaUser && r.accessToken, 'tokens');
});
let mfaOrg = null;
try { mfaOrg = py('special-org', 'mfa').id; } catch (e) { mfaOrg = null; }
if (mfaOrg) S.mfaOrg = mfaOrg;
await step('authenticate → 403 mfa_enrollment → enrollAuthFactor → authenticateWithTotp', ['mfaOrg'], async () => {
  const u = await newUser('enroll');
  await member(u.id, S.mfaOrg);
  const b = await expect403(() => signIn(email('enroll')), 'mfa_enrollment');
  assert(b.user?.id === u.id, JSON.stringify(b.user));
  const r = await um.enrollAuthFactor({ userId: u.id, type: 'totp' });
  const t = await um.authenticateWithTotp({ code: totp(r.authenticationFactor.totp.secret), pendingAuthenticationToken: b.pending_authentication_token, authenticationChallengeId: r.authenticationChallenge.id });
  assert(t.user.id === u.id && t.organizationId === S.mfaOrg, `organizationId ${t.organizationId}`);
});

// --- several orgs --------------------------------------------------------------------------
await step('authenticate → 403 organization_selection_required', ['orgA', 'orgB'], async () => {
  const u = await newUser('multi');
  await member(u.id, S.orgA);
  await member(u.id, S.orgB);
  S.multi = u.id;
  const b = await expect403(() => signIn(email('multi')), 'organization_selection_required');
  const ids = (b.organizations || []).map((o) => o.id);
  assert(ids.includes(S.orgA) && ids.includes(S.orgB), JSON.stringify(b.organizations));
  S.selPending = b.pending_authentication_token;
});
await step('userManagement.authenticateWithOrganizationSelection', ['selPending'], async () => {
  const r = await um.authenticateWithOrganizationSelection({ pendingAuthenticationToken: S.selPending, organizationId: S.orgB });
  assert(r.organizationId === S.orgB, `organizationId ${r.organizationId}`);
  S.multiRt = r.refreshToken;
});
await step('userManagement.authenticateWithRefreshToken(organizationId)', ['multiRt'], async () => {
  const r = await um.authenticateWithRefreshToken({ refreshToken: S.multiRt, organizationId: S.orgA, session: { sealSession: true, cookiePassword: COOKIE_PW } });
  assert(r.organizationId === S.orgA, `organizationId ${r.organizationId}`);
  const a = await um.loadSealedSession({ sessionData: r.sealedSession, cookiePassword: COOKIE_PW }).authenticate();
  assert(a.authenticated && a.organizationId === S.orgA, JSON.stringify(a).slice(0, 200));
});

// --- hosted sign-in ------------------------------------------------------------------------
await step('userManagement.getAuthorizationUrl → sign in → authenticateWithCode', ['user', 'mem'], async () => {
  const url = um.getAuthorizationUrl({ provider: 'authkit', redirectUri: REDIRECT_URI, state: `st-${RUN}`, loginHint: email('main') });
  const q = py('signin', url, email('main'), S.password);
  assert(q.code && q.state === `st-${RUN}`, JSON.stringify(q));
  const r = await um.authenticateWithCode({ code: q.code });
  assert(r.user.id === S.user && r.accessToken, 'user');
});
await step('userManagement.getAuthorizationUrlWithPKCE → authenticateWithCode(codeVerifier)', ['user', 'mem'], async () => {
  const p = await um.getAuthorizationUrlWithPKCE({ provider: 'authkit', redirectUri: REDIRECT_URI, loginHint: email('main') });
  const q = py('signin', p.url, email('main'), S.password);
  assert(q.code && q.state === p.state, JSON.stringify(q));
  assert((await um.authenticateWithCode({ code: q.code, codeVerifier: p.codeVerifier })).user.id === S.user, 'user');
});
await step('userManagement.authenticateWithCodeAndVerifier (public client, no secret)', ['user', 'mem'], async () => {
  const p = await um.getAuthorizationUrlWithPKCE({ provider: 'authkit', redirectUri: REDIRECT_URI, loginHint: email('main') });
  const q = py('signin', p.url, email('main'), S.password);
  assert((await um.authenticateWithCodeAndVerifier({ code: q.code, codeVerifier: p.codeVerifier })).user.id === S.user, 'user');
});
notInSdk('POST /user_management/authorize/device');
notInSdk('authenticate (device_code grant)');

// --- invitations ---------------------------------------------------------------------------
await step('userManagement.sendInvitation', ['orgA'], async () => {
  const i = await um.sendInvitation({ email: email('invitee'), organizationId: S.orgA, expiresInDays: 3 });
  S.inv = i;
  assert(i.state === 'pending' && i.token && i.organizationId === S.orgA && !i.acceptedAt, JSON.stringify(i));
});
await step('userManagement.getInvitation', ['inv'], async () => {
  assert((await um.getInvitation(S.inv.id)).id === S.inv.id, 'id');
});
await step('userManagement.findInvitationByToken', ['inv'], async () => {
  assert((await um.findInvitationByToken(S.inv.token)).id === S.inv.id, 'id');
});
await step('userManagement.listInvitations', ['inv'], async () => {
  assert((await um.listInvitations({ organizationId: S.orgA })).data.some((i) => i.id === S.inv.id), 'by org');
  assert((await um.listInvitations({ email: email('invitee') })).data.some((i) => i.id === S.inv.id), 'by email');
});
await step('userManagement.resendInvitation', ['inv'], async () => {
  const i = await um.resendInvitation(S.inv.id);
  assert(i.id === S.inv.id && i.state === 'pending', JSON.stringify(i));
  S.inv = i;
});
await step('userManagement.acceptInvitation', ['inv'], async () => {
  const i = await um.acceptInvitation(S.inv.id);
  assert(i.state === 'accepted' && i.acceptedAt, JSON.stringify(i));
});
await step('userManagement.revokeInvitation', ['orgA'], async () => {
  const i = await um.sendInvitation({ email: email('revokee'), organizationId: S.orgA });
  const r = await um.revokeInvitation(i.id);
  assert(r.state === 'revoked' && r.revokedAt, JSON.stringify(r));
});

// --- deletes -------------------------------------------------------------------------------
await step('userManagement.deleteOrganizationMembership', ['mem'], async () => {
  await um.deleteOrganizationMembership(S.mem);
  await expect404(() => um.getOrganizationMembership(S.mem));
});
await step('userManagement.deleteUser', ['bcryptUser'], async () => {
  await um.deleteUser(S.bcryptUser);
  await expect404(() => um.getUser(S.bcryptUser));
});
await step('organizations.deleteOrganization', ['orgB'], async () => {
  await workos.organizations.deleteOrganization(S.orgB);
  await expect404(() => workos.organizations.getOrganization(S.orgB));
});

const out = env.WORKOS_RESULTS_NODE || join(here, '..', 'out', `${TARGET}-node.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 1) + '\n');
const failed = results.filter((r) => !r.ok && !r.skipped).length;
const passed = results.filter((r) => r.ok).length;
const skipped = results.filter((r) => r.skipped).length;
console.error(`node: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);
