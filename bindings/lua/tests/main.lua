--- The Lua binding's tests, inside LÖVE's LuaJIT: `love bindings/lua/tests [layout FILE]`.
-- Prints "ok <name>" per test and exits 0, or prints the failure and exits 1. With
-- `layout FILE` it prints instead the size and every field offset of the structs
-- FILE lists (lines "struct field field ..."), for test_lua.py to compare with gcc's.

local source = love.filesystem.getSource()
package.path = source .. "/../?.lua;" .. source .. "/../../../demo-game/love/?.lua;" .. package.path
local ffi = require("ffi")
local baton = require("baton")
local territory = require("territory")

local tests = {}

local function raises(fn, code_name, message_part)
    local ok, err = pcall(fn)
    assert(not ok, "expected an error")
    assert(getmetatable(err) == baton.Error, "not a baton.Error: " .. tostring(err))
    assert(err.name == code_name, "expected " .. code_name .. ", got " .. tostring(err))
    if message_part then
        assert(tostring(err):find(message_part, 1, true), "message lacks '" .. message_part .. "': " .. tostring(err))
    end
    return err
end

function tests.abi_and_names()
    baton.load()
    assert(ffi.C ~= nil)
    assert(baton.results[0] == "ok" and baton.results[1] == "would_block")
    assert(baton.event_kinds[3] == "run_tick" and baton.event_kinds[18] == "fatal")
end

function tests.bad_config_is_a_lua_error_with_the_librarys_message()
    raises(function() baton.host({ tick_mode = 42 }) end, "BATON_RESULT_INVALID_ARGUMENT", "tick_mode")
    raises(function() baton.host({ tick_hz = 0 }) end, "BATON_RESULT_INVALID_ARGUMENT", "`tick_hz`: must be 1 to 1000")
    raises(function() baton.host({ reserved = 1 }) end, "BATON_RESULT_INVALID_ARGUMENT")
    raises(function() baton.host({ bind_addr = "not an address" }) end, "BATON_RESULT_INVALID_ARGUMENT", "bind_addr")
    local ok, err = pcall(baton.host, { tick_rate = 30 })
    assert(not ok and tostring(err):find("no field tick_rate"), tostring(err))
    ok, err = pcall(baton.host, { tick_mode = "sometimes" })
    assert(not ok and tostring(err):find("unknown tick_mode"), tostring(err))
end

function tests.bad_invite_and_stale_handles()
    raises(function() baton.join("baton1-garbage") end, "BATON_RESULT_INVALID_INVITE")
    local session = baton.host({ tick_mode = "turn_based" })
    raises(function() session:submit_input("") end, "BATON_RESULT_INVALID_ARGUMENT")
    raises(function() session:submit_input(string.rep("x", 1048576)) end, "BATON_RESULT_TOO_LARGE")
    raises(function() session:set_game_score(2) end, "BATON_RESULT_INVALID_ARGUMENT")
    session:network_changed() -- a LAN session: nothing to do, no error
    assert(session:commit_tick(999999, "payload") == false, "an unasked tick is no request")
    local handle = session:handle()
    session:close()
    session:close() -- a second close does nothing
    raises(function() session:poll() end, "BATON_RESULT_INVALID_HANDLE")
    assert(baton.results[ffi.load(baton.path).baton_session_free(handle)] == "invalid_handle")
end

function tests.a_session_starts_and_ticks()
    local session = baton.host({ tick_mode = "turn_based", turn_timeout_ms = 50 })
    local started, applied, committed, state = false, 0, nil, territory.new()
    local deadline = love.timer.getTime() + 20
    while not committed and love.timer.getTime() < deadline do
        session:wait(0.1)
        for _, event in ipairs(session:poll()) do
            if event.kind == "started" then
                started = true
                assert(#event.player == 16, "player ids are 16 hex digits")
                assert(session:invite():match("^baton1%-"), "an invite")
                assert(session:submit_input(territory.order(3, 4, 900, false)) == 1)
            elseif event.kind == "run_tick" then
                assert(session:commit_tick(event.tick, territory.decide(state, event.inputs)))
            elseif event.kind == "apply_tick" then
                assert(territory.apply(state, event.tick, event.inputs, event.data) == nil)
                applied = applied + 1
            elseif event.kind == "input_committed" then
                committed = event
            elseif event.kind == "make_snapshot" then
                assert(session:answer_snapshot(event.tick, territory.encode(state)))
            end
        end
    end
    assert(started and committed and committed.sequence == 1, "ticks applied: " .. applied)
    assert(committed.tick <= state.turn, "committed means applied")
    assert(state.owners[territory.cell(3, 4)] == session:status().id, "the claim was won")
    session:stop()
    -- A request or input after the session stopped is normal play at a leave, not a fault.
    local value, reason = session:submit_input(territory.order(0, 0, 0, false))
    assert(value == nil and reason == "stopped", tostring(reason))
    assert(session:commit_tick(state.turn + 1, "") == false)
    assert(session:answer_snapshot(state.turn, territory.encode(state)) == false)
    session:close()
end

function tests.territory_snapshots_round_trip_and_junk_is_refused()
    local state = territory.new()
    local inputs = {
        { player = "00000000000000aa", incarnation = 1, sequence = 1, data = territory.order(1, 2, 950, true) },
        { player = "ffffffffffffff01", incarnation = 1, sequence = 1, data = territory.order(1, 2, 700, false) },
        { player = "ffffffffffffff01", incarnation = 1, sequence = 2, data = "junk" },
    }
    local payload = territory.decide(state, inputs)
    assert(payload == "\1\0\2", "first claim wins, junk is no order")
    assert(territory.apply(state, 1, inputs, payload) == nil)
    assert(territory.apply(state, 3, {}, "") ~= nil, "a turn out of order is refused")
    assert(territory.apply(state, 2, inputs, "\1") ~= nil, "a payload that does not match is refused")
    assert(state.owners[territory.cell(1, 2)] == "00000000000000aa")
    assert(territory.letter(state, "ffffffffffffff01") == "B")
    local copy = assert(territory.decode(territory.encode(state)))
    assert(territory.encode(copy) == territory.encode(state))
    assert(territory.hash_hex(copy) == territory.hash_hex(state) and copy.history[1] == state.history[1])
    assert(territory.inputs_applied_once(state))
    for _, junk in ipairs({ "", "territory 2", "territory 1\nturn x", territory.encode(state) .. "\ncell 999 00000000000000aa" }) do
        local decoded, problem = territory.decode(junk)
        assert(decoded == nil and problem, "junk decoded: " .. junk)
    end
end

local function layout(path)
    for line in io.lines(path) do
        local words = {}
        for word in line:gmatch("%S+") do
            words[#words + 1] = word
        end
        local struct = table.remove(words, 1)
        local out = { struct, tostring(ffi.sizeof(struct)) }
        for _, field in ipairs(words) do
            out[#out + 1] = field .. "@" .. tostring(ffi.offsetof(struct, field))
        end
        print(table.concat(out, " "))
    end
end

function love.load(args)
    if args[1] == "layout" then
        layout(args[2])
        love.event.quit(0)
        return
    end
    local names = {}
    for name in pairs(tests) do
        names[#names + 1] = name
    end
    table.sort(names)
    for _, name in ipairs(names) do
        local ok, err = xpcall(tests[name], debug.traceback)
        if not ok then
            print("FAIL " .. name .. ": " .. tostring(err))
            io.stdout:flush()
            os.exit(1)
        end
        print("ok " .. name)
    end
    io.stdout:flush()
    love.event.quit(0)
end
