-- Argo CD health of a vmove.dev VirtualMachine, from status.phase and spec.running:
--   Healthy      Running when it should run, Stopped when spec.running is false
--   Progressing  Pending (being placed or started), Moving (a MoveRequest holds it), starting
--                or stopping towards spec.running, and while the controller has not seen the
--                latest spec yet
--   Degraded     Failed (its host could not define or start it), with the reason; Lost (its
--                host's agent is gone, so its state is unknown)
-- Argo CD runs this with gopher-lua (Lua 5.1): nothing newer than 5.1 is used.

local function condition(status, type)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == type then return c end
  end
  return nil
end

local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then return c.message end
  return fallback
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  return { status = "Progressing", message = "Deleting: the VM is stopped and removed from its host first" }
end

local s = obj.status
if s == nil or s.phase == nil then
  return { status = "Progressing", message = "Waiting for the vmove controller to place the VM" }
end

local failed = condition(s, "Failed")
if s.phase == "Failed" or (failed ~= nil and failed.status == "True" and s.phase ~= "Moving") then
  return { status = "Degraded", message = message(failed, "Failed") }
end
if s.phase == "Lost" then
  return { status = "Degraded", message = "Lost: " .. message(condition(s, "HostReachable"), "its host's agent is gone") }
end
if s.phase == "Moving" then
  if s.moveRef ~= nil then return { status = "Progressing", message = "Moving: MoveRequest " .. s.moveRef.name } end
  return { status = "Progressing", message = "Moving" }
end
if s.phase == "Pending" then
  local scheduled = condition(s, "Scheduled")
  if scheduled ~= nil and scheduled.status == "False" then
    return { status = "Progressing", message = "Pending: " .. message(scheduled, "not placed yet") }
  end
  return { status = "Progressing", message = "Pending" }
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and s.observedGeneration ~= nil and s.observedGeneration < generation then
  return { status = "Progressing", message = "Waiting for the vmove controller to see generation " .. tostring(generation) }
end
local wanted = "Running"
if obj.spec ~= nil and obj.spec.running == false then wanted = "Stopped" end
local where = ""
if s.nodeName ~= nil then where = " on " .. s.nodeName end
if s.phase == wanted then return { status = "Healthy", message = s.phase .. where } end
if wanted == "Running" then return { status = "Progressing", message = "Starting" .. where } end
return { status = "Progressing", message = "Stopping" .. where .. " (spec.running is false)" }
