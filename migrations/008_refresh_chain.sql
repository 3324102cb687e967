-- Version 8: refresh tokens that name their session (issue 17). A token issued from now on is
-- `<session id>-<generation>-<secret>`; its row is keyed by (session_id, generation), so a
-- session's tokens sit together in one B-tree and a rotation updates the current row and
-- appends its successor on the same page: no random-key index to insert into. `token_hash`
-- is the SHA-256 of the whole token (compared in constant time after the key lookup).
-- Tokens issued before this version stay in `refresh_tokens` and keep working: their
-- successors are issued here (docs/architecture.md, "Refresh tokens").
CREATE TABLE refresh_chain (
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation    INTEGER NOT NULL,
    token_hash    BLOB NOT NULL,
    org_id        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    rotated_at    INTEGER,                  -- set when the successor (generation + 1) was issued
    successor     INTEGER,                  -- its sealed copy in refresh_successors (grace window)
    PRIMARY KEY (session_id, generation)
) STRICT, WITHOUT ROWID;
-- The sealed successors of rotated tokens, kept for refresh_grace only. Apart from the chain,
-- so its rows stay small (a WITHOUT ROWID table's interior pages hold whole rows), appended in
-- rotation order and forgotten from the front.
CREATE TABLE refresh_successors (
    id         INTEGER PRIMARY KEY,
    rotated_at INTEGER NOT NULL,
    sealed     BLOB NOT NULL
) STRICT;
