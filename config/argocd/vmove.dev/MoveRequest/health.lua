-- Argo CD health of a vmove.dev MoveRequest (one move of one VM), from status.phase:
--   Healthy      Succeeded: the VM runs on its target
--   Progressing  every phase before the end, RollingBack included (a transient failure is
--                retried); also while the controller has not seen the latest spec yet
--   Degraded     Failed, with the reason the move gives
--   Suspended    Cancelled. Neither success nor failure: the move did not happen because
--                someone chose so, and the VM is where it was. Degraded would page people for
--                a deliberate act and Healthy would hide that the wanted move never happened;
--                Suspended is Argo CD's "stopped on purpose" (a suspended CronJob, a paused
--                Rollout), and an Application holding it shows Suspended, not an error.
-- Argo CD runs this with gopher-lua (Lua 5.1): nothing newer than 5.1 is used.

local function condition(status, type)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == type then return c end
  end
  return nil
end

-- The first non-empty message of the conditions named (True ones), or `fallback`.
local function reason(status, types, fallback)
  for _, t in ipairs(types) do
    local c = condition(status, t)
    if c ~= nil and c.status == "True" and c.message ~= nil and c.message ~= "" then return c.message end
  end
  if status.message ~= nil and status.message ~= "" then return status.message end
  return fallback
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  return { status = "Progressing", message = "Deleting: a move in flight is cancelled and rolled back first" }
end

local s = obj.status
if s == nil or s.phase == nil then
  return { status = "Progressing", message = "Waiting for the vmove controller" }
end

if s.phase == "Succeeded" then
  return { status = "Healthy", message = reason(s, { "Ready" }, "Succeeded") }
end
if s.phase == "Failed" then
  return { status = "Degraded", message = reason(s, { "Stalled", "Failed" }, "Failed") }
end
if s.phase == "Cancelled" then
  return { status = "Suspended", message = reason(s, { "Cancelled" }, "Cancelled") }
end

-- In flight (the terminal phases are exactly the three above).
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and s.observedGeneration ~= nil and s.observedGeneration < generation then
  return { status = "Progressing", message = "Waiting for the vmove controller to see generation " .. tostring(generation) }
end
local message = s.phase
if s.progress ~= nil and s.progress.percent ~= nil and (s.phase == "Migrating" or s.phase == "CopyingDisks") then
  message = message .. " " .. tostring(s.progress.percent) .. "%"
end
if s.sourceNode ~= nil and s.targetNode ~= nil then
  message = message .. " (" .. s.sourceNode .. " → " .. s.targetNode .. ")"
end
-- Why it waits, or what it rolls back from; in other phases status.message is the last step's note.
if (s.phase == "Pending" or s.phase == "Scheduling" or s.phase == "RollingBack") and s.message ~= nil and s.message ~= "" then
  message = message .. ": " .. s.message
end
return { status = "Progressing", message = message }
