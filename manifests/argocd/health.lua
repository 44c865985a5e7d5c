-- Argo CD health of a Thrifty InferenceModel or InferenceRouter, read from the status the
-- operator writes. Argo CD runs it with the live object in `obj` (Lua 5.1).
--
--   no status yet, or status older than the spec  -> Progressing (the operator has not caught up)
--   Degraded=True                                  -> Degraded, with the condition's message
--   Progressing=True                               -> Progressing (a rollout is under way)
--   Ready=True, or Ready=False for ScaledToZero    -> Healthy (zero replicas is a chosen state)
--   anything else                                  -> Progressing, with Ready's message
local health = {}

local function find_condition(conditions, wanted)
  for _, condition in ipairs(conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

local function message_of(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return condition.reason or ""
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  health.status = "Progressing"
  health.message = "Waiting for the Thrifty operator to report status"
  return health
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  health.status = "Progressing"
  health.message = "Waiting for the Thrifty operator to observe generation " .. generation
  return health
end

local degraded = find_condition(status.conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  health.status = "Degraded"
  health.message = message_of(degraded)
  return health
end

local progressing = find_condition(status.conditions, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  health.status = "Progressing"
  health.message = message_of(progressing)
  return health
end

local ready = find_condition(status.conditions, "Ready")
if ready ~= nil and (ready.status == "True" or ready.reason == "ScaledToZero") then
  health.status = "Healthy"
  health.message = message_of(ready)
  return health
end

health.status = "Progressing"
if ready ~= nil then
  health.message = message_of(ready)
else
  health.message = "Waiting for the Ready condition"
end
return health
