-- Argo CD health of a vmove.dev HostEvacuation (move every VM off one node), from status.phase:
--   Healthy      Succeeded: the node is empty — or, for a dry run, the plan is made
--   Progressing  Pending, Planning, Evacuating; also while the controller has not seen the
--                latest spec yet
--   Degraded     Failed (some VMs could not be moved), with the evacuation's message; and
--                WaitingForFence: the host is dead and its VMs are down until someone fences it
--                (taint node.kubernetes.io/out-of-service) — it resumes then, but not by itself
--   Suspended    Cancelled: stopped on purpose, the VMs not yet moved stay where they are (see
--                MoveRequest/health.lua for why Suspended)
-- Argo CD runs this with gopher-lua (Lua 5.1): nothing newer than 5.1 is used.

local function said(s, fallback)
  if s.message ~= nil and s.message ~= "" then return s.message end
  return fallback
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  local s = obj.status or {}
  return { status = "Progressing", message = said(s, "Deleting: the evacuation's moves stop first") }
end

local s = obj.status
if s == nil or s.phase == nil then
  return { status = "Progressing", message = "Waiting for the vmove controller" }
end

if s.phase == "Succeeded" then return { status = "Healthy", message = said(s, "Succeeded") } end
if s.phase == "Failed" then return { status = "Degraded", message = said(s, "Failed") } end
if s.phase == "Cancelled" then return { status = "Suspended", message = said(s, "Cancelled") } end
if s.phase == "WaitingForFence" then return { status = "Degraded", message = said(s, "waiting for the node to be fenced") } end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and s.observedGeneration ~= nil and s.observedGeneration < generation then
  return { status = "Progressing", message = "Waiting for the vmove controller to see generation " .. tostring(generation) }
end
return { status = "Progressing", message = said(s, s.phase) }
