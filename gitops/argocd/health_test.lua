-- Unit test of health.lua with hand-written objects: `lua5.4 gitops/argocd/health_test.lua`
-- (run by `e2e/run helm`, which also checks it against status objects the operator produced).
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local script = dir .. "/health.lua"

local function health(o)
  obj = o
  return dofile(script)
end

local function cond(t, s, reason, message)
  return { type = t, status = s, reason = reason, message = message }
end

local failures = 0
local function expect(name, o, want, message_part)
  local hs = health(o)
  local ok = hs.status == want and (message_part == nil or (hs.message or ""):find(message_part, 1, true))
  if not ok then
    failures = failures + 1
    print("FAIL " .. name .. ": got " .. tostring(hs.status) .. " (" .. tostring(hs.message) .. "), want " .. want)
  else
    print("ok   " .. name .. ": " .. hs.status)
  end
end

local meta = { generation = 2 }
expect("no status yet", { metadata = meta }, "Progressing", "Waiting")
expect("old generation", { metadata = meta, status = { observedGeneration = 1,
  conditions = { cond("Ready", "True", "Available", "r1 serves") } } }, "Progressing", "generation 2")
expect("ready", { metadata = meta, status = { observedGeneration = 2,
  conditions = { cond("Ready", "True", "Available", "r1 serves"), cond("Progressing", "False", "Available", ""),
    cond("Degraded", "False", "Available", "") } } }, "Healthy", "r1 serves")
expect("canary running", { metadata = meta, status = { observedGeneration = 2,
  conditions = { cond("Ready", "True", "Available", ""), cond("Progressing", "True", "Canary", "r2 at 10%") } } },
  "Progressing", "r2 at 10%")
expect("invalid spec", { metadata = meta, status = { observedGeneration = 2,
  conditions = { cond("Ready", "False", "InvalidSpec", "spec.x: bad"), cond("Degraded", "True", "InvalidSpec", "spec.x: bad") } } },
  "Degraded", "spec.x: bad")
expect("rolled back", { metadata = meta, status = { observedGeneration = 2,
  conditions = { cond("Ready", "True", "Available", ""), cond("Progressing", "False", "Reconciled", ""),
    cond("Degraded", "True", "RolledBack", "r2 failed"),
    cond("RolledBack", "True", "AnalysisFailed", "error rate 12% > 5%") } } }, "Degraded", "error rate 12%")
expect("retried after a rollback", { metadata = meta, status = { observedGeneration = 2,
  rollout = { state = "Canary", revision = "r2", weight = 10 },
  conditions = { cond("Ready", "False", "RolloutInProgress", ""), cond("Progressing", "True", "Canary", "canary r2 at 10%"),
    cond("RolledBack", "True", "RolledBack", "rollback to r1 requested") } } }, "Progressing", "canary r2")
expect("paused", { metadata = meta, status = { observedGeneration = 2,
  rollout = { state = "Paused", revision = "r3", weight = 50 },
  conditions = { cond("Ready", "True", "Available", ""), cond("Progressing", "True", "Paused", "") } } },
  "Suspended", "r3 paused at 50%")
expect("rolled back and held back (kstatus: Failed)", { metadata = meta, status = { observedGeneration = 2,
  conditions = { cond("Ready", "False", "RolledBack", "r2 is held back: error rate 12% > 5%; r1 keeps serving"),
    cond("Reconciling", "False", "RolledBack", ""), cond("Stalled", "True", "RolledBack", "r2 is held back: error rate 12% > 5%; r1 keeps serving"),
    cond("Progressing", "False", "Reconciled", ""), cond("Degraded", "True", "RolledBack", "r2 is held back"),
    cond("RolledBack", "True", "RolledBack", "error rate 12% > 5%") } } }, "Degraded", "error rate 12%")
expect("baking (kstatus: InProgress)", { metadata = meta, status = { observedGeneration = 2,
  conditions = { cond("Ready", "True", "Available", "r2 is active"), cond("Reconciling", "True", "Baking", "r2 promoted; watched for 60s"),
    cond("Stalled", "False", "Reconciled", "") } } }, "Progressing", "watched for 60s")
expect("invalid spec (kstatus: Failed)", { metadata = meta, status = { observedGeneration = 2,
  conditions = { cond("Ready", "False", "InvalidSpec", "spec.x: bad"), cond("Reconciling", "False", "InvalidSpec", "waiting"),
    cond("Stalled", "True", "InvalidSpec", "spec.x: bad") } } }, "Degraded", "spec.x: bad")
expect("waiting for pods", { metadata = meta, status = { observedGeneration = 2,
  conditions = { cond("Ready", "False", "NoReadyPods", "no ready data-plane pods") } } }, "Progressing", "no ready")

if failures > 0 then
  print(failures .. " failure(s)")
  os.exit(1)
end
print("all passed")
