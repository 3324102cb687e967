-- Version 5: one active signing key per algorithm (issue 15, the OpenID Connect provider).
-- Access tokens keep the configured `tokens.algorithm`; an RS256 key is always active beside
-- it, for id_tokens (when the configured algorithm is RS256, one key serves both). Rotation
-- retires only the active key of the same algorithm. Existing rows are unchanged: the one
-- active key of an older database stays active for its algorithm.
DROP INDEX signing_keys_one_active;
CREATE UNIQUE INDEX signing_keys_active_per_alg ON signing_keys (alg) WHERE retired_at IS NULL;
