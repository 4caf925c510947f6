--- Baton from Lua, over libbaton's C ABI with LuaJIT's FFI (LÖVE, or any LuaJIT 2.1).
--
-- The declarations come from ffi/include/baton.h through baton_h.lua, which
-- generate.py writes (a test fails when it drifts). This module adds a thin wrapper in
-- the shape of the C API: pump a session once a frame with `session:poll()`, apply
-- ticks, answer the host's requests, submit inputs.
--
--     local baton = require("baton")
--     local session = baton.host({ tick_mode = "turn_based", turn_timeout_ms = 300 })
--     function love.update()
--         for _, event in ipairs(session:poll()) do
--             if event.kind == "run_tick" then session:commit_tick(event.tick, decide(event.inputs))
--             elseif event.kind == "apply_tick" then apply(event)
--             elseif event.kind == "make_snapshot" then session:answer_snapshot(event.tick, encode())
--             elseif event.kind == "restore" then state = decode(event.data) end
--         end
--     end
--
-- Events are copied into Lua tables (bytes as Lua strings), so they stay valid as long
-- as you keep them, unlike the C API's, which last until the next poll. Player ids are
-- 64-bit: they come as 16-digit hex strings, which Lua compares and hashes exactly.
-- Every failure raises a `baton.Error` (fields `code`, `name`, `call`, `message`; it
-- prints as "call: NAME: message" with the library's own message). The few results a
-- game meets in normal play are return values instead: `submit_input` gives nil and the
-- reason while the window is full or the session has stopped, `commit_tick` and
-- `answer_snapshot` give false when hosting moved on or the session stopped before the
-- answer.
--
-- The library is found through BATON_LIB (a path to libbaton.so), else `baton.load(path)`
-- before the first call, else the repository's target/debug or target/release, else the
-- system's loader (a libbaton next to the game, or on LD_LIBRARY_PATH).

local ffi = require("ffi")
local header = require("baton_h")

ffi.cdef(header.cdef)

local M = {
    ABI_VERSION = header.BATON_ABI_VERSION,
    results = header.results,
    event_kinds = header.event_kinds,
    leave_outcomes = header.leave_outcomes,
}

local function invert(names)
    local codes = {}
    for code, name in pairs(names) do
        codes[name] = code
    end
    return codes
end

local RESULT = invert(header.results)
local TICK_MODE = invert(header.tick_modes)
local DURABILITY = invert(header.durabilities)
local POLL_CAPACITY = 256

-- The library, loaded on first use.
local lib

local function here()
    local source = debug.getinfo(1, "S").source
    return source:sub(1, 1) == "@" and source:sub(2):match("^(.*)/[^/]*$") or "."
end

local function exists(path)
    local file = io.open(path, "rb")
    if file then
        file:close()
        return true
    end
    return false
end

--- Loads libbaton from `path` (or searches, as the module's doc says) and checks its ABI.
function M.load(path)
    if lib then
        return lib
    end
    local candidates = {}
    if path then
        candidates[#candidates + 1] = path
    end
    if os.getenv("BATON_LIB") then
        candidates[#candidates + 1] = os.getenv("BATON_LIB")
    end
    local root = here() .. "/../.."
    local dirs = { root .. "/target" }
    if os.getenv("CARGO_TARGET_DIR") then
        table.insert(dirs, 1, os.getenv("CARGO_TARGET_DIR"))
    end
    for _, dir in ipairs(dirs) do
        candidates[#candidates + 1] = dir .. "/debug/libbaton.so"
        candidates[#candidates + 1] = dir .. "/release/libbaton.so"
    end
    local chosen = "baton"
    for _, candidate in ipairs(candidates) do
        if exists(candidate) then
            chosen = candidate
            break
        end
    end
    local loaded = ffi.load(chosen)
    local abi = loaded.baton_abi_version()
    if abi ~= M.ABI_VERSION then
        error(string.format("libbaton at %s implements ABI %d; this binding expects %d", chosen, abi, M.ABI_VERSION), 2)
    end
    lib = loaded
    M.path = chosen
    return lib
end

local Error = {}
Error.__index = Error
Error.__tostring = function(self)
    return string.format("%s: %s: %s", self.call, self.name, self.message)
end
M.Error = Error

local function last_error_message()
    local needed = ffi.new("size_t[1]")
    if lib.baton_last_error_message(nil, 0, needed) ~= RESULT.ok or needed[0] == 0 then
        return ""
    end
    local buffer = ffi.new("uint8_t[?]", needed[0])
    local len = ffi.new("size_t[1]")
    if lib.baton_last_error_message(buffer, needed[0], len) ~= RESULT.ok then
        return ""
    end
    return ffi.string(buffer, len[0])
end

local function raise(code, call)
    local name = ffi.string(lib.baton_result_name(code))
    error(setmetatable({ code = code, name = name, call = call, message = last_error_message() }, Error), 3)
end

local function check(code, call)
    if code ~= RESULT.ok then
        raise(code, call)
    end
end

--- A 64-bit id as the 16-digit hex string this module uses for players.
function M.hex(id)
    return bit.tohex(ffi.cast("uint64_t", id), 16)
end

local function id_or_nil(id, set)
    if set == 0 then
        return nil
    end
    return M.hex(id)
end

local function bytes(pointer, len)
    if len == 0 then
        return ""
    end
    return ffi.string(pointer, len)
end

-- Config fields that take Lua strings; each is a pointer and a length in baton_config.
local TEXT_FIELDS = { bind_addr = true, advertise_addr = true, data_dir = true, identity_path = true }

--- A baton_config: the library's defaults with `fields` set (names as in baton.h;
-- `tick_mode` and `durability` also take "turn_based", "relaxed", ...; text fields take
-- Lua strings). Returns the cdata and the strings it points into, which must outlive it.
local function make_config(fields)
    M.load()
    local config = ffi.new("baton_config")
    check(lib.baton_config_default(config), "baton_config_default")
    local keep = {}
    for name, value in pairs(fields or {}) do
        if TEXT_FIELDS[name] then
            if type(value) ~= "string" then
                error("baton config: " .. name .. " takes a string", 3)
            end
            keep[#keep + 1] = value
            config[name] = ffi.cast("const uint8_t *", value)
            config[name .. "_len"] = #value
        elseif name == "tick_mode" or name == "durability" then
            local codes = name == "tick_mode" and TICK_MODE or DURABILITY
            config[name] = type(value) == "string" and (codes[value] or error("baton config: unknown " .. name .. " " .. value, 3))
                or value
        elseif pcall(function() return config[name] end) and not name:match("_len$") then
            config[name] = value
        else
            error("baton config: no field " .. tostring(name), 3)
        end
    end
    return config, keep
end

local Session = {}
Session.__index = Session
M.Session = Session

-- Frees a session when Lua collects a handle the game forgot to close.
local function guard(handle)
    return ffi.gc(ffi.new("uint64_t[1]", handle), function(cell)
        if cell[0] ~= 0 then
            lib.baton_session_free(cell[0])
        end
    end)
end

local function wrap(handle)
    return setmetatable({
        cell = guard(handle),
        events = ffi.new("baton_event[?]", POLL_CAPACITY),
        count = ffi.new("size_t[1]"),
        sequence = ffi.new("uint64_t[1]"),
    }, Session)
end

--- Founds a session hosted here. `STARTED` (or `FATAL`) follows in a poll.
function M.host(fields)
    local config, keep = make_config(fields)
    local handle = ffi.new("baton_session[1]")
    check(lib.baton_host(M.ABI_VERSION, config, handle), "baton_host")
    local session = wrap(handle[0])
    session.keep = keep
    return session
end

--- Joins the session of an invite code (a string "baton1-...").
function M.join(invite, fields)
    if type(invite) ~= "string" then
        error("baton.join: the invite must be a string", 2)
    end
    local config, keep = make_config(fields)
    local handle = ffi.new("baton_session[1]")
    check(lib.baton_join(M.ABI_VERSION, config, ffi.cast("const uint8_t *", invite), #invite, handle), "baton_join")
    local session = wrap(handle[0])
    session.keep = keep
    return session
end

function Session:handle()
    return self.cell[0]
end

local function copy_event(raw)
    local event = {
        kind = header.event_kinds[raw.kind] or raw.kind,
        tick = tonumber(raw.tick),
        sequence = tonumber(raw.sequence),
        player = id_or_nil(raw.player, raw.player_set),
        fitness = raw.fitness,
        leave_outcome = header.leave_outcomes[raw.leave_outcome],
        data = bytes(raw.data, raw.data_len),
    }
    if raw.inputs_len > 0 then
        local inputs = {}
        for i = 0, tonumber(raw.inputs_len) - 1 do
            local input = raw.inputs[i]
            inputs[i + 1] = {
                player = M.hex(input.player),
                incarnation = tonumber(input.incarnation),
                sequence = tonumber(input.sequence),
                data = bytes(input.data, input.data_len),
            }
        end
        event.inputs = inputs
    else
        event.inputs = {}
    end
    return event
end

--- Every waiting event, copied into Lua tables, oldest first. Never blocks.
function Session:poll()
    local out = {}
    repeat
        check(lib.baton_poll(self.cell[0], self.events, POLL_CAPACITY, self.count), "baton_poll")
        local count = tonumber(self.count[0])
        for i = 0, count - 1 do
            out[#out + 1] = copy_event(self.events[i])
        end
    until count < POLL_CAPACITY
    return out
end

--- Blocks up to `seconds` for an event (for tools and tests, never a game's frame).
function Session:wait(seconds)
    local ready = ffi.new("uint32_t[1]")
    check(lib.baton_wait(self.cell[0], math.floor(seconds * 1000), ready), "baton_wait")
    return ready[0] == 1
end

--- Sends an input (a Lua string) to the host: its sequence number, or nil and
-- "would_block" (too many inputs await commitment) or "stopped".
function Session:submit_input(data)
    local code = lib.baton_submit_input(self.cell[0], data, #data, self.sequence)
    if code == RESULT.would_block or code == RESULT.stopped then
        return nil, header.results[code]
    end
    check(code, "baton_submit_input")
    return tonumber(self.sequence[0])
end

-- A request polled before the session moved on (hosting passed to another player, or
-- the session stopped: a leave finished, say) can no longer be answered. That is normal
-- play, not a fault of the game, so the answers say false instead of raising.
local function request_gone(code)
    return code == RESULT.no_such_request or code == RESULT.stopped
end

--- Answers RUN_TICK `tick` with a payload (a Lua string, may be empty): true, or
-- false when hosting moved on (or the session stopped) before the answer.
function Session:commit_tick(tick, payload)
    payload = payload or ""
    local code = lib.baton_commit_tick(self.cell[0], tick, #payload > 0 and payload or nil, #payload)
    if request_gone(code) then
        return false
    end
    check(code, "baton_commit_tick")
    return true
end

--- Answers MAKE_SNAPSHOT `tick` with the state's bytes: true, or false when the request
-- is gone (as for commit_tick).
function Session:answer_snapshot(tick, snapshot)
    local code = lib.baton_answer_snapshot(self.cell[0], tick, #snapshot > 0 and snapshot or nil, #snapshot)
    if request_gone(code) then
        return false
    end
    check(code, "baton_answer_snapshot")
    return true
end

--- The game's part of this player's fitness, in [0, 1].
function Session:set_game_score(score)
    check(lib.baton_set_game_score(self.cell[0], score), "baton_set_game_score")
end

--- The device's network changed: over the Internet, re-register at once (harmless on a LAN).
function Session:network_changed()
    check(lib.baton_network_changed(self.cell[0]), "baton_network_changed")
end

--- Starts a graceful leave (a host hands over first); LEFT says how it ended.
function Session:leave()
    check(lib.baton_leave(self.cell[0]), "baton_leave")
end

--- Stops at once, as a crash would.
function Session:stop()
    check(lib.baton_stop(self.cell[0]), "baton_stop")
end

--- What this player knows of its session now (never blocks).
function Session:status()
    local raw = ffi.new("baton_session_status")
    check(lib.baton_status(self.cell[0], raw), "baton_status")
    return {
        id = M.hex(raw.id),
        host = id_or_nil(raw.host, raw.host_set),
        hosting = raw.hosting == 1,
        voter = raw.voter == 1,
        voters = raw.voters,
        learners = raw.learners,
        fitness = raw.fitness,
        last_tick = tonumber(raw.last_tick),
        inputs_pending = tonumber(raw.inputs_pending),
        leaving = raw.leaving == 1,
        stopped = raw.stopped == 1,
    }
end

--- The invite code others join with (after STARTED).
function Session:invite()
    local needed = ffi.new("size_t[1]")
    check(lib.baton_invite(self.cell[0], nil, 0, needed), "baton_invite")
    local buffer = ffi.new("uint8_t[?]", needed[0])
    local len = ffi.new("size_t[1]")
    check(lib.baton_invite(self.cell[0], buffer, needed[0], len), "baton_invite")
    return ffi.string(buffer, len[0])
end

--- Stops the session and frees its handle; a second close does nothing.
function Session:close()
    local handle = self.cell[0]
    if handle ~= 0 then
        self.cell[0] = 0
        check(lib.baton_session_free(handle), "baton_session_free")
    end
end

return M
