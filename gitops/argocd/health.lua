-- Argo CD health check for videoresizer.io/VideoResizerConfig.
-- Argo CD runs this with the live object as the global `obj` and reads the returned table.
-- The operator's status follows kstatus: observedGeneration, and the conditions Ready,
-- Reconciling, Stalled, Progressing, Degraded and (after a rollback) RolledBack;
-- status.rollout.state says whether a canary is running, paused or baking.
--
--   spec not observed yet (observedGeneration < generation)  -> Progressing
--   rollout paused (status.rollout.state == Paused)            -> Suspended
--   Stalled=True (rolled back and held back, invalid spec)     -> Degraded  (needs a fix or a retry)
--   Reconciling=True or Progressing=True (canary, bake, pods)  -> Progressing
--   RolledBack=True (the spec's revision was rolled back)      -> Degraded
--   Degraded=True (invalid spec, workload short of replicas)   -> Degraded
--   Ready=True                                                 -> Healthy
--   anything else                                              -> Progressing (waiting)
-- A rollout in progress wins over a RolledBack condition that is still set from the previous
-- attempt (after `vrctl retry` the canary runs again while RolledBack stays until promotion);
-- the operator never sets Stalled while a canary runs. Objects written before Reconciling and
-- Stalled existed are read through the other conditions.
local hs = {}

local function condition(status, type_)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function says(c, default)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return default
end

local status = obj.status
local generation = obj.metadata and obj.metadata.generation

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile this config"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if status.rollout ~= nil and status.rollout.state == "Paused" then
  hs.status = "Suspended"
  hs.message = "Rollout of " .. tostring(status.rollout.revision) .. " paused at "
    .. tostring(status.rollout.weight) .. "% (vrctl resume)"
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled, "Stalled")
  return hs
end

for _, type_ in ipairs({ "Reconciling", "Progressing" }) do
  local c = condition(status, type_)
  if c ~= nil and c.status == "True" then
    hs.status = "Progressing"
    hs.message = says(c, type_)
    return hs
  end
end

local rolledBack = condition(status, "RolledBack")
if rolledBack ~= nil and rolledBack.status == "True" then
  hs.status = "Degraded"
  hs.message = "Rolled back: " .. says(rolledBack, "the new revision failed its analysis")
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = says(degraded, "Degraded")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = says(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = says(ready, "Waiting for the config to become ready")
return hs
