-- Latchkey: POST /api/v1/auth/signup into the open org `bench`, a unique email per request
-- (one argon2id hash, the account, its membership, a session and the verification email).
local run = os.getenv("RUN") or tostring(os.time())
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
local n = 0
local hdr = { ["Content-Type"] = "application/json", ["X-Org-Slug"] = "bench" }
function request()
  n = n + 1
  local body = string.format('{"email":"su-%s-%d-%d@example.com","password":"correct-horse-battery-%d","name":"user %d"}',
    run, tid or 0, n, n, n)
  return wrk.format("POST", "/api/v1/auth/signup", hdr, body)
end
