-- Argo CD health check for dcs.hwcloud.dev/DcsTaskQuery (Lua 5.1, as Argo CD runs it).
--
-- Argo CD sets the global `obj` to the live object and shows the returned table's `status` and
-- `message`. The rules mirror kstatus, so Argo CD and Flux agree on every object:
--   * no status yet, or status.observedGeneration behind metadata.generation  -> Progressing
--   * Reconciling=True (first visit, wait pending, transient upstream error)  -> Progressing
--   * Stalled=True or Failed=True (bad spec, refused credentials, task failed
--     or wait timed out)                                                     -> Degraded
--   * Complete=True or Ready=True                                            -> Healthy
--   * anything else (Ready=False/Unknown, no conditions)                     -> Progressing
-- Conditions whose own observedGeneration is behind metadata.generation describe an older spec
-- and are ignored.
-- Keep integrations/argocd/argocd-cm.yaml in step with this file (a test compares them).

local hs = { status = "Progressing", message = "" }

local function condition_message(condition, fallback)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.type .. ": " .. condition.reason
  end
  return fallback
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if obj.status == nil then
  hs.message = "Waiting for the operator to observe the query"
  return hs
end

local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  if observed == nil then
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  else
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
      .. " (status describes generation " .. tostring(observed) .. ")"
  end
  return hs
end

-- The current conditions by type.
local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    local current = generation == nil or condition.observedGeneration == nil
      or condition.observedGeneration >= generation
    if current and condition.type ~= nil then
      conditions[condition.type] = condition
    end
  end
end

local function is_true(kind)
  local condition = conditions[kind]
  return condition ~= nil and condition.status == "True"
end

if is_true("Reconciling") then
  hs.message = condition_message(conditions["Reconciling"], "Reconciling")
  return hs
end

if is_true("Stalled") then
  hs.status = "Degraded"
  hs.message = condition_message(conditions["Stalled"], "Stalled")
  return hs
end

if is_true("Failed") then
  hs.status = "Degraded"
  hs.message = condition_message(conditions["Failed"], "Failed")
  return hs
end

local wait = obj.status.waitFor
if wait ~= nil and wait.phase == "Pending" then
  hs.message = wait.message or "Waiting for the awaited task"
  return hs
end

if is_true("Complete") then
  hs.status = "Healthy"
  hs.message = condition_message(conditions["Complete"], "Complete")
  return hs
end

if is_true("Ready") then
  hs.status = "Healthy"
  hs.message = condition_message(conditions["Ready"], "Ready")
  return hs
end

if conditions["Ready"] ~= nil then
  hs.message = condition_message(conditions["Ready"], "Not ready yet")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
