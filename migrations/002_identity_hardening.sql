-- Version 2: identity hardening (issue 12).
-- Who set an org's appUrl: 1 = the operator (/admin/orgs, any host), 0 = an org admin (only a
-- host on security.allowed_app_hosts). Links with account-wide tokens use an appUrl only when
-- the operator set it or its host is allowed.
ALTER TABLE orgs ADD COLUMN app_url_by_operator INTEGER NOT NULL DEFAULT 0;
-- How an invitation's token reached the invitee: 'email' (only the mailbox saw it, so
-- accepting it proves the address) or 'app' (sendEmail:false: the inviter saw it, so it proves
-- nothing about the mailbox).
ALTER TABLE invitations ADD COLUMN delivery TEXT NOT NULL DEFAULT 'email'
    CHECK (delivery IN ('email', 'app'));
-- A partial token of an existing account accepting an invitation with its password: the
-- membership is made when the second factor completes the login.
ALTER TABLE partial_tokens ADD COLUMN invitation_id TEXT;
