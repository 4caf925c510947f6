--- Territory, the game of Baton's demo, in Lua (the Rust one is demo-game/src/lib.rs).
--
-- Every turn each player claims one cell of a 16x16 board with an order. The host
-- decides the turn (RUN_TICK): first valid claim on a free cell wins, and its answer is
-- one byte per input (1 won, 0 lost, 2 not an order). Every player applies the inputs
-- with the host's decisions (APPLY_TICK), so all replicas hold the same board, and a
-- running 64-bit hash of everything applied lets them compare it with one number.
--
-- Orders have the Rust demo's bytes: x, y, fitness (big-endian u16, thousandths),
-- flags (1: a person gave it). Fitness rides in the orders so that every replica, not
-- only the host, can show every player's. Nothing here touches LÖVE: the binding's
-- tests and the game both use it.

local ffi = require("ffi")

local M = { SIDE = 16, SEATS_MAX = 8 }
M.CELLS = M.SIDE * M.SIDE

local WON, LOST, NOT_AN_ORDER = 1, 0, 2
local FLAG_HUMAN = 1

--- An empty board before turn 1.
function M.new()
    return {
        turn = 0,
        hash = ffi.new("uint64_t", 0),
        claims_applied = 0,
        owners = {},    -- cell index (y * SIDE + x) -> player id (hex)
        players = {},   -- player id -> record (see record())
        seats = {},     -- seat number (0-based) -> player id
        history = {},   -- turn -> hash after it (hex)
        last_human_turn = 0,
    }
end

--- Encodes an order.
function M.order(x, y, fitness, human)
    fitness = math.max(0, math.min(65535, math.floor(fitness)))
    return string.char(x, y, math.floor(fitness / 256), fitness % 256, human and FLAG_HUMAN or 0)
end

--- Decodes input bytes into x, y, fitness, human; nil for anything that is not an order
-- on the board (input bytes come from other players).
function M.decode_order(data)
    if #data ~= 5 then
        return nil
    end
    local x, y, high, low, flags = data:byte(1, 5)
    if x >= M.SIDE or y >= M.SIDE then
        return nil
    end
    return x, y, high * 256 + low, bit.band(flags, FLAG_HUMAN) ~= 0
end

function M.cell(x, y)
    return y * M.SIDE + x
end

local function u64(hex)
    return ffi.cast("uint64_t", tonumber(hex:sub(1, 8), 16)) * 4294967296ULL + tonumber(hex:sub(9, 16), 16)
end

local function mix(state, values)
    local hash = state.hash
    for _, value in ipairs(values) do
        hash = bit.rol(bit.bxor(hash, ffi.cast("uint64_t", value)) * 0x100000001b3ULL, 7)
    end
    state.hash = hash
end

--- The hash after the last turn applied, as 16 hex digits.
function M.hash_hex(state)
    return bit.tohex(state.hash, 16)
end

local function record(state, input)
    local player = state.players[input.player]
    if not player then
        local seat = 0
        while state.seats[seat] do
            seat = seat + 1
        end
        player = { seat = seat, fitness = 0, human = false, inputs_applied = 0, incarnation = 0,
            incarnation_inputs_applied = 0, last_sequence = 0, out_of_order = 0, last_order_turn = 0 }
        state.players[input.player] = player
        state.seats[seat] = input.player
    end
    if input.incarnation > player.incarnation then
        player.incarnation = input.incarnation
        player.incarnation_inputs_applied = 0
        player.last_sequence = 0
    end
    if input.incarnation < player.incarnation or input.sequence ~= player.last_sequence + 1 then
        player.out_of_order = player.out_of_order + 1
    end
    player.inputs_applied = player.inputs_applied + 1
    player.incarnation_inputs_applied = player.incarnation_inputs_applied + 1
    player.last_sequence = math.max(player.last_sequence, input.sequence)
    return player
end

--- The host's decision for one turn, against the state of every turn applied so far:
-- the payload to answer RUN_TICK with.
function M.decide(state, inputs)
    local taken = {}
    local decisions = {}
    for i, input in ipairs(inputs) do
        local x, y = M.decode_order(input.data)
        if not x then
            decisions[i] = string.char(NOT_AN_ORDER)
        else
            local cell = M.cell(x, y)
            if state.owners[cell] or taken[cell] then
                decisions[i] = string.char(LOST)
            else
                taken[cell] = true
                decisions[i] = string.char(WON)
            end
        end
    end
    return table.concat(decisions)
end

--- Applies committed turn `tick` with its inputs and the host's payload. Returns nil,
-- or an error message (and changes nothing) when the turn cannot be this board's next.
function M.apply(state, tick, inputs, payload)
    if tick ~= state.turn + 1 then
        return string.format("turn %d applied after turn %d", tick, state.turn)
    end
    if #payload ~= #inputs then
        return string.format("turn %d: the host decided %d of %d inputs", tick, #payload, #inputs)
    end
    for i, input in ipairs(inputs) do
        local player = record(state, input)
        local decision = payload:byte(i)
        local x, y, fitness, human = M.decode_order(input.data)
        if x and decision ~= NOT_AN_ORDER then
            player.fitness = fitness
            player.human = player.human or human
            player.last_order_turn = tick
            if human then
                state.last_human_turn = tick
            end
            state.claims_applied = state.claims_applied + 1
            if decision == WON then
                state.owners[M.cell(x, y)] = input.player
            end
            mix(state, { u64(input.player), input.incarnation, input.sequence, x, y, decision })
        end
    end
    state.turn = tick
    mix(state, { tick })
    state.history[tick] = M.hash_hex(state)
    return nil
end

--- Cells owned per player id.
function M.scores(state)
    local scores = {}
    for _, owner in pairs(state.owners) do
        scores[owner] = (scores[owner] or 0) + 1
    end
    return scores
end

--- Every player's inputs were applied once each, in sequence, with no gap.
function M.inputs_applied_once(state)
    for _, player in pairs(state.players) do
        if player.out_of_order ~= 0 or player.incarnation_inputs_applied ~= player.last_sequence then
            return false
        end
    end
    return true
end

--- The seat letter of a player ("?" before its first input applied).
function M.letter(state, id)
    local player = id and state.players[id]
    if not player then
        return "?"
    end
    return string.char(65 + player.seat)
end

local PLAYER_FIELDS = { "seat", "fitness", "human", "inputs_applied", "incarnation", "incarnation_inputs_applied",
    "last_sequence", "out_of_order", "last_order_turn" }

--- The whole state as bytes (a line-based text), for MAKE_SNAPSHOT.
function M.encode(state)
    local lines = { "territory 1", string.format("turn %d %s %d %d", state.turn, M.hash_hex(state),
        state.claims_applied, state.last_human_turn) }
    local ids = {}
    for id in pairs(state.players) do
        ids[#ids + 1] = id
    end
    table.sort(ids)
    for _, id in ipairs(ids) do
        local player = state.players[id]
        local fields = { "player", id }
        for _, name in ipairs(PLAYER_FIELDS) do
            local value = player[name]
            fields[#fields + 1] = tostring(value == true and 1 or value == false and 0 or value)
        end
        lines[#lines + 1] = table.concat(fields, " ")
    end
    for cell = 0, M.CELLS - 1 do
        if state.owners[cell] then
            lines[#lines + 1] = string.format("cell %d %s", cell, state.owners[cell])
        end
    end
    local history = {}
    for turn = 1, state.turn do
        history[turn] = state.history[turn] or "-"
    end
    lines[#lines + 1] = "history " .. table.concat(history, " ")
    return table.concat(lines, "\n")
end

local function hex_id(text)
    return text and #text == 16 and text:match("^%x+$") and text:lower()
end

--- Decodes bytes made by encode(): the state, or nil and what is wrong with them.
function M.decode(bytes)
    local state = M.new()
    local lines = {}
    for line in (bytes .. "\n"):gmatch("([^\n]*)\n") do
        lines[#lines + 1] = line
    end
    if lines[1] ~= "territory 1" then
        return nil, "not a Territory snapshot"
    end
    local turn, hash, claims, human_turn = (lines[2] or ""):match("^turn (%d+) (%x+) (%d+) (%d+)$")
    if not turn or not hex_id(hash) then
        return nil, "snapshot: bad turn line"
    end
    state.turn, state.hash = tonumber(turn), u64(hash)
    state.claims_applied, state.last_human_turn = tonumber(claims), tonumber(human_turn)
    for i = 3, #lines do
        local line = lines[i]
        local kind, rest = line:match("^(%a+) ?(.*)$")
        if kind == "player" then
            local words = {}
            for word in rest:gmatch("%S+") do
                words[#words + 1] = word
            end
            local id = hex_id(words[1])
            if not id or #words ~= #PLAYER_FIELDS + 1 then
                return nil, "snapshot: bad player line"
            end
            local player = {}
            for index, name in ipairs(PLAYER_FIELDS) do
                local value = tonumber(words[index + 1])
                if not value then
                    return nil, "snapshot: bad player field " .. name
                end
                player[name] = value
            end
            player.human = player.human == 1
            state.players[id] = player
            state.seats[player.seat] = id
        elseif kind == "cell" then
            local cell, owner = rest:match("^(%d+) (%x+)$")
            cell = tonumber(cell)
            if not cell or cell >= M.CELLS or not hex_id(owner) then
                return nil, "snapshot: bad cell line"
            end
            state.owners[cell] = owner
        elseif kind == "history" then
            local turn_at = 0
            for word in rest:gmatch("%S+") do
                turn_at = turn_at + 1
                state.history[turn_at] = word ~= "-" and word or nil
            end
            if turn_at ~= state.turn then
                return nil, "snapshot: history does not reach its turn"
            end
        else
            return nil, "snapshot: unknown line " .. line:sub(1, 40)
        end
    end
    return state
end

--- A bot's choices, from a seed: a free cell when one is found in a few tries.
function M.bot(seed)
    local rng = (seed * 2654435761 + 1) % 4294967296
    local function next_random()
        rng = (rng * 1664525 + 1013904223) % 4294967296
        return math.floor(rng / 256)
    end
    return function(state)
        for _ = 1, 32 do
            local x, y = next_random() % M.SIDE, next_random() % M.SIDE
            if not state.owners[M.cell(x, y)] then
                return x, y
            end
        end
        return next_random() % M.SIDE, next_random() % M.SIDE
    end
end

return M
