-- Version 4: upkeep (issue 13). Indexes for the maintenance sweep (src/maintenance.rs), so
-- each of its batches is a range scan rather than a walk over the whole table. The
-- expressions are the ones the sweep's queries use (src/db/sessions.rs, invitations.rs).
CREATE INDEX audit_created ON audit_log (created_at);
-- When a session ended: expiry, idle expiry or revocation, whichever came first.
CREATE INDEX sessions_ended ON sessions (MIN(expires_at, idle_expires_at, COALESCE(revoked_at, expires_at)));
-- Only rotated tokens whose sealed successor is still kept (the grace window): a few rows.
CREATE INDEX refresh_tokens_sealed ON refresh_tokens (rotated_at) WHERE successor_enc IS NOT NULL;
CREATE INDEX partial_tokens_expires ON partial_tokens (expires_at);
CREATE INDEX email_tokens_expires ON email_tokens (expires_at);
-- When an invitation closed: its expiry while pending, else when it was answered or revoked.
CREATE INDEX invitations_closed ON invitations (CASE state WHEN 'pending' THEN expires_at ELSE COALESCE(responded_at, expires_at) END);
