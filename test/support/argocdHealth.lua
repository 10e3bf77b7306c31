-- Runs an Argo CD health check the way Argo CD does: the object as the global table `obj`,
-- the script's return value its health. Usage: lua argocdHealth.lua HEALTH.lua < object.json
-- Prints {"status": …, "message": …} as JSON. Lua 5.1 to 5.4: JSON null is nil (absent), as it
-- is when Argo CD hands a Kubernetes object to gopher-lua.

local function decoder(text)
  local pos = 1
  local value

  local function fail(what)
    error(string.format("JSON: %s at byte %d", what, pos), 0)
  end
  local function skip()
    pos = string.find(text, "[^ \t\r\n]", pos) or (#text + 1)
  end

  -- One code point as UTF-8 (no utf8 library before Lua 5.3).
  local function utf8char(cp)
    if cp < 0x80 then return string.char(cp) end
    if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40) end
    if cp < 0x10000 then
      return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
    end
    return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40, 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end

  local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
  local function str()
    pos = pos + 1 -- the opening quote
    local out = {}
    while true do
      local c = string.sub(text, pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; return table.concat(out) end
      if c == "\\" then
        local e = string.sub(text, pos + 1, pos + 1)
        if e == "u" then
          local cp = tonumber(string.sub(text, pos + 2, pos + 5), 16) or fail("bad \\u escape")
          pos = pos + 6
          -- A surrogate pair stands for one code point above U+FFFF.
          if cp >= 0xD800 and cp < 0xDC00 and string.sub(text, pos, pos + 1) == "\\u" then
            local low = tonumber(string.sub(text, pos + 2, pos + 5), 16) or fail("bad \\u escape")
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
            pos = pos + 6
          end
          out[#out + 1] = utf8char(cp)
        else
          out[#out + 1] = escapes[e] or fail("bad escape")
          pos = pos + 2
        end
      else
        local stop = string.find(text, '["\\]', pos) or (#text + 1)
        out[#out + 1] = string.sub(text, pos, stop - 1)
        pos = stop
      end
    end
  end

  local function list(open, close, item)
    pos = pos + 1
    local t = {}
    skip()
    if string.sub(text, pos, pos) == close then pos = pos + 1; return t end
    while true do
      item(t)
      skip()
      local c = string.sub(text, pos, pos)
      pos = pos + 1
      if c == close then return t end
      if c ~= "," then fail("expected , or " .. close .. " after " .. open) end
    end
  end

  value = function()
    skip()
    local c = string.sub(text, pos, pos)
    if c == "{" then
      return list("{", "}", function(t)
        skip()
        if string.sub(text, pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        skip()
        if string.sub(text, pos, pos) ~= ":" then fail("expected :") end
        pos = pos + 1
        t[k] = value()
      end)
    elseif c == "[" then
      return list("[", "]", function(t)
        -- A null item keeps its place; Kubernetes lists hold none.
        t[#t + 1] = value()
      end)
    elseif c == '"' then
      return str()
    end
    if string.sub(text, pos, pos + 3) == "true" then pos = pos + 4; return true end
    if string.sub(text, pos, pos + 4) == "false" then pos = pos + 5; return false end
    if string.sub(text, pos, pos + 3) == "null" then pos = pos + 4; return nil end
    local number = string.match(text, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if number == nil or number == "" then fail("unexpected character") end
    pos = pos + #number
    return tonumber(number)
  end

  local v = value()
  skip()
  if pos <= #text then fail("trailing text") end
  return v
end

local function quote(s)
  return '"' .. string.gsub(tostring(s), '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

local script = assert(arg[1], "usage: lua argocdHealth.lua HEALTH.lua < object.json")
obj = decoder(io.read("*a"))
local check = assert(loadfile(script))
local hs = check()
if type(hs) ~= "table" then error("the health check returned " .. type(hs) .. ", not a table", 0) end
io.write("{\"status\":", quote(hs.status), ",\"message\":", quote(hs.message), "}\n")
