--- Territory on Baton, as a LÖVE game: libbaton through LuaJIT's FFI (bindings/lua).
--
--     love demo-game/love                      # a menu: host, or join with the invite on the clipboard
--     love demo-game/love --host               # found a session; C copies its invite
--     love demo-game/love --join baton1-...    # take a seat
--
-- Click a free cell to claim it next turn (one order waits at a time); A lets a bot play
-- your seat; C copies the invite; closing the window leaves with a planned handoff.
--
-- Bot mode (--bot, or BATON_LOVE_BOT=1) plays unattended for tests, and reports on
-- stdout, one flushed line each, as it happens (a line written before a SIGKILL is in
-- the pipe for whoever reads it, which is how a test holds a killed host to what it said
-- it had committed):
--
--     ready <id> <invite>                       the session started
--     turn <n> <hash>                           turn n committed and applied here
--     restore <n> <hash>                        the state was replaced by a snapshot of turn n
--     host <id>|-                               the host changed (- while electing)
--     became-host <turn>                        this player hosts from turn
--     clicked <x> <y> <sequence>                a click on the board became an order
--     committed <sequence> <turn>               an order of ours was applied
--     promoted                                  this player votes now
--     player-left <id>                          a player left the session
--     migration <from> <to> <cause> <pause-ms> <turn>   play went on under another host
--     final <turn> <inputs-once> <hash> <h1,h2,...>     --turns reached; every hash so far
--     screenshot <path>                         a PNG of the window after the migration
--     stopped <reason>                          the session ended
--
-- Flags: --seed N, --turns N (bots order until turn N, then report final), --think-ms,
-- --turn-ms, --bind ADDR, --invite-file PATH (the host writes its invite there; a player
-- without --join waits for it), --exit-file PATH (quit when it exists), --screenshot NAME
-- (taken two turns after a migration, into the save directory).

local territory = require("territory")

-- The binding: copied next to the game (how a shipped game carries it), or this
-- repository's bindings/lua.
package.path = love.filesystem.getSource() .. "/../../bindings/lua/?.lua;" .. package.path
local baton = require("baton")

local FRAME_SECONDS = 1 / 30
local LEAVE_SECONDS_MAX = 10
local BOT_LIFETIME_SECONDS_MAX = 180
local LOG_LINES_MAX = 14
local PACE_TURNS = 10
-- How long after play resumes a departed host's PLAYER_LEFT may still arrive. A host that
-- leaves hands over first and asks the new host to remove it afterwards, so the new host
-- may run turns before the removal commits; past this (half the SDK's 10 s leave budget,
-- after which a leaver stops waiting) a host that was never removed was lost.
local CAUSE_WAIT_SECONDS = 5
local CELL = 34
local BOARD_X, BOARD_Y = 20, 64
local PANEL_X = BOARD_X + CELL * territory.SIDE + 24
local SEAT_COLOURS = {
    [0] = { 0.90, 0.30, 0.25 }, { 0.25, 0.55, 0.95 }, { 0.30, 0.78, 0.35 }, { 0.95, 0.75, 0.20 },
    { 0.70, 0.40, 0.90 }, { 0.20, 0.80, 0.80 }, { 0.95, 0.50, 0.70 }, { 0.60, 0.60, 0.60 },
}

local options = {
    bot = os.getenv("BATON_LOVE_BOT") == "1",
    seed = 1,
    turns = 0,
    think_ms = 100,
}

local game = {
    state = territory.new(),
    log = {},
    migrations = {},
    gone = {},      -- player id -> why it is no longer in the session
    intervals = {},
    started_at = 0,
}

local fonts = {}

local function now()
    return love.timer.getTime()
end

local function report(...)
    if options.bot then
        io.stdout:write(table.concat({ ... }, " "), "\n")
        io.stdout:flush()
    end
end

local function note(line)
    table.insert(game.log, line)
    if #game.log > LOG_LINES_MAX then
        table.remove(game.log, 1)
    end
end

local function short(id)
    return id and id:sub(1, 8) or "-"
end

local function name(id)
    if not id then
        return "nobody"
    end
    return territory.letter(game.state, id) .. " " .. short(id)
end

local function parse_arguments(args)
    local i = 1
    local function value()
        i = i + 1
        return args[i] or error("missing value after " .. args[i - 1])
    end
    while i <= #args do
        local flag = args[i]
        if flag == "--bot" then
            options.bot = true
        elseif flag == "--host" then
            options.host = true
        elseif flag == "--join" then
            options.join = value()
        elseif flag == "--invite-file" then
            options.invite_file = value()
        elseif flag == "--exit-file" then
            options.exit_file = value()
        elseif flag == "--screenshot" then
            options.screenshot = value()
        elseif flag == "--bind" then
            options.bind = value()
        elseif flag == "--seed" or flag == "--turns" or flag == "--think-ms" or flag == "--turn-ms" then
            options[flag:sub(3):gsub("-", "_")] = tonumber(value()) or error(flag .. " takes a number")
        else
            error("unknown argument " .. flag)
        end
        i = i + 1
    end
    options.turn_ms = options.turn_ms or (options.bot and 300 or 2000)
    game.autoplay = options.bot
end

local function read_file(path)
    local file = io.open(path, "rb")
    if not file then
        return nil
    end
    local text = file:read("*a")
    file:close()
    return text
end

local function write_file_atomically(path, text)
    local file = assert(io.open(path .. ".tmp", "wb"))
    file:write(text)
    file:close()
    assert(os.rename(path .. ".tmp", path))
end

local function config()
    return { tick_mode = "turn_based", turn_timeout_ms = options.turn_ms, lockstep = 0, bind_addr = options.bind }
end

local function open(invite)
    game.started_at = now()
    if invite then
        game.session = baton.join(invite, config())
        note("joining...")
    else
        game.session = baton.host(config())
        note("founding a session...")
    end
end

local function own_fitness()
    return game.status and game.status.fitness or 0
end

-- Picks and submits this player's order for the next turn.
local function order(x, y, human)
    if game.pending or not game.started or game.stopped then
        return false
    end
    local sequence = game.session:submit_input(territory.order(x, y, own_fitness(), human))
    if not sequence then
        return false
    end
    game.pending = { sequence = sequence, x = x, y = y }
    game.ordered_after_turn = game.state.turn
    return true
end

local function median(values)
    local sorted = {}
    for i, v in ipairs(values) do
        sorted[i] = v
    end
    table.sort(sorted)
    return sorted[math.floor((#sorted + 1) / 2)]
end

local function open_migration(from, election)
    if game.migration or not from then
        return
    end
    local pace = #game.intervals > 0 and median(game.intervals) or nil
    game.migration = { from = from, started = game.last_apply_at or now(), turn = game.state.turn,
        election = election, pace = pace }
end

-- Says what the migration was, once that is known: a planned handoff if the old host's
-- PLAYER_LEFT came, a lost host if it never did.
local function decide_migration(planned)
    local migration = game.undecided
    game.undecided = nil
    migration.planned = planned
    if not planned then
        game.gone[migration.from] = "lost"
    end
    local cause = planned and "handoff" or "election"
    local turns = migration.pace and string.format(" (%.1f turns)", migration.pause_ms / 1000 / migration.pace) or ""
    note(string.format("turn %d: host %s -> %s (%s); play paused %d ms%s", migration.turn, name(migration.from),
        name(migration.to), planned and "planned handoff" or "host lost, election", migration.pause_ms, turns))
    report("migration", migration.from, migration.to, cause, migration.pause_ms, migration.turn)
end

local function close_migration()
    local migration = game.migration
    game.migration = nil
    migration.pause_ms = math.floor((now() - migration.started) * 1000 + 0.5)
    migration.at = now()
    table.insert(game.migrations, migration)
    if game.undecided then
        decide_migration(false) -- a second migration before the first's cause was known
    end
    game.undecided = migration
    -- A host change seen without an election in between is a transfer; otherwise only the
    -- old host's removal tells a handoff from a crash.
    if game.gone[migration.from] == "left" or not migration.election then
        decide_migration(true)
    end
    if options.screenshot and not game.screenshot_turn then
        game.screenshot_turn = game.state.turn + 2
    end
end

local function host_changed(host)
    if host == nil then
        open_migration(game.host, true)
    elseif game.host and host ~= game.host then
        open_migration(game.host, false)
    end
    if game.migration and host then
        if host == game.migration.from then
            game.migration = nil -- the same host again (say, re-elected as the session starts)
        else
            game.migration.to = host
        end
    end
    if host and host ~= game.host then
        note(string.format("turn %d: host is now %s", game.state.turn, name(host)))
    end
    game.host = host
    report("host", host or "-")
end

local function turn_applied()
    local at = now()
    if game.last_apply_at then
        table.insert(game.intervals, at - game.last_apply_at)
        if #game.intervals > PACE_TURNS then
            table.remove(game.intervals, 1)
        end
    end
    game.last_apply_at = at
    report("turn", game.state.turn, territory.hash_hex(game.state))
    if game.migration and game.migration.to then
        close_migration()
    end
end

local HANDLERS = {}

function HANDLERS.started(event)
    game.started = true
    game.me = event.player
    game.invite = game.session:invite()
    note("you are " .. game.me)
    report("ready", game.me, game.invite)
    if options.invite_file and options.host then
        write_file_atomically(options.invite_file, game.invite)
    end
end

function HANDLERS.run_tick(event)
    game.session:commit_tick(event.tick, territory.decide(game.state, event.inputs))
end

function HANDLERS.apply_tick(event)
    local problem = territory.apply(game.state, event.tick, event.inputs, event.data)
    if problem then
        error("the replica cannot apply a committed turn: " .. problem)
    end
    turn_applied()
end

function HANDLERS.make_snapshot(event)
    if event.tick ~= game.state.turn then
        error(string.format("snapshot asked at turn %d, the board is at %d", event.tick, game.state.turn))
    end
    game.session:answer_snapshot(event.tick, territory.encode(game.state))
end

function HANDLERS.restore(event)
    local state, problem = territory.new(), nil
    if event.data ~= "" then
        state, problem = territory.decode(event.data)
    end
    if not state or state.turn ~= event.tick then
        error(string.format("cannot restore the snapshot of turn %d: %s", event.tick, problem or "another turn"))
    end
    game.state = state
    report("restore", state.turn, territory.hash_hex(state))
end

function HANDLERS.input_committed(event)
    if game.pending and game.pending.sequence == event.sequence then
        game.pending = nil
    end
    report("committed", event.sequence, event.tick)
end

function HANDLERS.became_host(event)
    game.hosting = true
    note(string.format("you host now, from turn %d", event.tick))
    report("became-host", event.tick)
end

function HANDLERS.lost_host()
    game.hosting = false
    note("you no longer host")
end

function HANDLERS.host_changed(event)
    host_changed(event.player)
end

function HANDLERS.player_joined(event)
    note("joined: " .. short(event.player))
end

function HANDLERS.player_left(event)
    game.gone[event.player] = game.gone[event.player] or "left"
    if game.undecided and game.undecided.from == event.player then
        decide_migration(true)
    end
    note("left: " .. name(event.player))
    report("player-left", event.player)
end

function HANDLERS.promoted()
    note("you vote now")
    report("promoted")
end

function HANDLERS.demoted()
    note("you are a learner now")
end

function HANDLERS.warning(event)
    note("warning: " .. event.data)
end

function HANDLERS.left(event)
    game.stopped = "left: " .. tostring(event.leave_outcome)
    note(game.stopped)
    report("stopped", game.stopped)
    if game.leaving then
        love.event.quit()
    end
end

function HANDLERS.fatal(event)
    game.stopped = "stopped: " .. event.data
    note(game.stopped)
    report("stopped", (event.data:gsub("\n", " ")))
end

local function pump()
    for _, event in ipairs(game.session:poll()) do
        local handler = HANDLERS[event.kind]
        if handler then
            handler(event)
        end
    end
    if not game.stopped and (not game.status_at or now() - game.status_at > 0.25) then
        game.status = game.session:status()
        game.status_at = now()
    end
end

local function play_bot()
    if not game.autoplay or game.pending or not game.started or game.stopped then
        return
    end
    if options.turns > 0 and game.state.turn >= options.turns then
        return
    end
    local since = game.last_apply_at or game.started_at
    if game.click_pending or (game.ordered_after_turn or -1) >= game.state.turn
        or now() - since < options.think_ms / 1000 then
        return
    end
    -- The bot plays as a person does: a left click on the cell's centre, through LÖVE's
    -- event queue, so the tests drive the same path the mouse does.
    local x, y = game.choose(game.state)
    game.click_pending = true
    love.event.push("mousepressed", BOARD_X + (x + 0.5) * CELL, BOARD_Y + (y + 0.5) * CELL, 1, false, 1)
end

local function check_final()
    if not options.bot or options.turns == 0 or game.final_reported then
        return
    end
    if game.state.turn >= options.turns and not game.pending and not game.undecided then
        game.final_reported = true
        local history = {}
        for turn = 1, game.state.turn do
            history[turn] = game.state.history[turn] or "-"
        end
        report("final", game.state.turn, territory.inputs_applied_once(game.state) and 1 or 0,
            territory.hash_hex(game.state), table.concat(history, ","))
    end
end

local function quit_now()
    game.quitting = true
    if game.session then
        game.session:close()
    end
    love.event.quit()
end

function love.load(args)
    parse_arguments(args)
    game.choose = territory.bot(options.seed)
    fonts.big = love.graphics.newFont(18)
    fonts.text = love.graphics.newFont(13)
    fonts.small = love.graphics.newFont(11)
    love.graphics.setBackgroundColor(0.08, 0.09, 0.11)
    if options.bot then
        -- A test's player stops with the test, whatever happens to the test.
        game.lifetime_end = now() + BOT_LIFETIME_SECONDS_MAX
        -- Errors end a bot with a message and a non-zero status instead of LÖVE's screen.
        love.errorhandler = function(message)
            io.stderr:write("territory bot: ", tostring(message), "\n", debug.traceback(), "\n")
            io.stderr:flush()
            os.exit(1)
        end
    end
    baton.load()
    if options.host then
        open(nil)
    elseif options.join then
        open(options.join)
    elseif not options.invite_file then
        game.menu = true
    end
end

function love.update()
    local frame_start = now()
    if game.menu then
        return
    end
    if not game.session then
        local invite = read_file(options.invite_file)
        if invite and invite ~= "" then
            open(invite)
        end
    else
        pump()
        if game.undecided and now() - game.undecided.at > CAUSE_WAIT_SECONDS then
            decide_migration(false)
        end
        play_bot()
        check_final()
        if game.screenshot_turn and game.state.turn >= game.screenshot_turn and not game.screenshot_taken
            and not game.undecided then
            game.screenshot_taken = true
            love.graphics.captureScreenshot(options.screenshot)
            game.screenshot_report = true
        elseif game.screenshot_report then
            game.screenshot_report = false
            report("screenshot", love.filesystem.getSaveDirectory() .. "/" .. options.screenshot)
        end
    end
    if options.exit_file and read_file(options.exit_file) then
        quit_now()
    end
    if game.lifetime_end and now() > game.lifetime_end then
        report("stopped", "bot lifetime reached")
        quit_now()
    end
    if game.leave_deadline and now() > game.leave_deadline then
        quit_now()
    end
    local rest = FRAME_SECONDS - (now() - frame_start)
    if rest > 0 then
        love.timer.sleep(rest)
    end
end

-- Closing the window leaves with a planned handoff: the host hands over to the fittest
-- caught-up voter before it goes, and the window closes once the library says LEFT.
function love.quit()
    if game.quitting or not game.session or game.stopped or not game.started then
        if game.session and not game.quitting then
            game.session:close()
        end
        return false
    end
    if not game.leaving then
        game.leaving = true
        game.leave_deadline = now() + LEAVE_SECONDS_MAX
        note(game.hosting and "leaving: handing the host over..." or "leaving...")
        local ok = pcall(game.session.leave, game.session)
        if not ok then
            quit_now()
            return false
        end
    end
    return true
end

local function cell_at(x, y)
    local cx, cy = math.floor((x - BOARD_X) / CELL), math.floor((y - BOARD_Y) / CELL)
    if cx >= 0 and cy >= 0 and cx < territory.SIDE and cy < territory.SIDE then
        return cx, cy
    end
end

local MENU_BUTTONS = {
    { label = "Host a session", x = 340, y = 250, w = 300, h = 50 },
    { label = "Join: invite from the clipboard", x = 340, y = 320, w = 300, h = 50 },
}

function love.mousepressed(x, y, button)
    if button ~= 1 then
        return
    end
    if game.menu then
        for index, b in ipairs(MENU_BUTTONS) do
            if x >= b.x and x <= b.x + b.w and y >= b.y and y <= b.y + b.h then
                local invite = index == 2 and love.system.getClipboardText():match("baton1%-%w+")
                if index == 1 or invite then
                    game.menu = false
                    options.host = index == 1
                    open(invite or nil)
                else
                    game.menu_message = "no invite on the clipboard: copy one with C in the host's window"
                end
            end
        end
        return
    end
    local human = not game.click_pending
    game.click_pending = false
    local cx, cy = cell_at(x, y)
    if not cx or not game.started then
        return
    end
    if game.state.owners[territory.cell(cx, cy)] then
        if human then
            note("that cell is taken")
        end
    elseif game.pending then
        note("one order waits at a time")
    elseif order(cx, cy, human) then
        report("clicked", cx, cy, game.pending.sequence)
        if human then
            note(string.format("ordered: claim (%d,%d) next turn", cx, cy))
        end
    end
end

function love.keypressed(key)
    if key == "c" and game.invite then
        love.system.setClipboardText(game.invite)
        note("invite copied to the clipboard")
    elseif key == "a" then
        game.autoplay = not game.autoplay
        note("autoplay " .. (game.autoplay and "on" or "off"))
    elseif key == "escape" then
        love.event.quit()
    end
end

local function colour(seat, alpha)
    local c = SEAT_COLOURS[seat % 8]
    love.graphics.setColor(c[1], c[2], c[3], alpha or 1)
end

local function draw_menu()
    love.graphics.setFont(fonts.big)
    love.graphics.setColor(1, 1, 1)
    love.graphics.printf("Territory on Baton", 0, 160, 980, "center")
    love.graphics.setFont(fonts.text)
    for _, b in ipairs(MENU_BUTTONS) do
        love.graphics.setColor(0.2, 0.3, 0.45)
        love.graphics.rectangle("fill", b.x, b.y, b.w, b.h, 6)
        love.graphics.setColor(1, 1, 1)
        love.graphics.printf(b.label, b.x, b.y + 17, b.w, "center")
    end
    if game.menu_message then
        love.graphics.setColor(1, 0.6, 0.5)
        love.graphics.printf(game.menu_message, 0, 400, 980, "center")
    end
end

local function draw_board()
    local state = game.state
    local mx, my = love.mouse.getPosition()
    local hx, hy = cell_at(mx, my)
    if options.bot then
        hx = nil -- nobody points at a bot's board
    end
    love.graphics.setFont(fonts.small)
    for y = 0, territory.SIDE - 1 do
        for x = 0, territory.SIDE - 1 do
            local px, py = BOARD_X + x * CELL, BOARD_Y + y * CELL
            local owner = state.owners[territory.cell(x, y)]
            if owner and state.players[owner] then
                colour(state.players[owner].seat)
                love.graphics.rectangle("fill", px + 1, py + 1, CELL - 2, CELL - 2, 3)
                love.graphics.setColor(0, 0, 0, 0.7)
                love.graphics.printf(territory.letter(state, owner), px, py + 10, CELL, "center")
            else
                love.graphics.setColor(0.16, 0.17, 0.2)
                love.graphics.rectangle("fill", px + 1, py + 1, CELL - 2, CELL - 2, 3)
            end
            if hx == x and hy == y then
                love.graphics.setColor(1, 1, 1, 0.8)
                love.graphics.rectangle("line", px + 1, py + 1, CELL - 2, CELL - 2, 3)
            end
        end
    end
    if game.pending then
        love.graphics.setColor(1, 0.9, 0.3)
        love.graphics.setLineWidth(3)
        love.graphics.rectangle("line", BOARD_X + game.pending.x * CELL + 2, BOARD_Y + game.pending.y * CELL + 2,
            CELL - 4, CELL - 4, 3)
        love.graphics.setLineWidth(1)
    end
end

local function host_fitness()
    if game.host and game.host == game.me then
        return own_fitness()
    end
    local player = game.host and game.state.players[game.host]
    return player and player.fitness
end

local function draw_header()
    love.graphics.setFont(fonts.big)
    love.graphics.setColor(1, 1, 1)
    local fitness = host_fitness()
    local text = string.format("Territory on Baton    turn %d    host %s%s", game.state.turn, name(game.host),
        fitness and string.format("  fitness %.3f", fitness / 1000) or "")
    love.graphics.print(text, BOARD_X, 18)
end

local function draw_panel()
    local x, y = PANEL_X, BOARD_Y
    local status = game.status
    love.graphics.setFont(fonts.text)
    love.graphics.setColor(0.85, 0.85, 0.9)
    local role = not status and "starting" or status.hosting and "you host" or status.voter and "voter" or "learner"
    love.graphics.print(string.format("you %s  (%s; %d voters, %d learners)", name(game.me), role,
        status and status.voters or 0, status and status.learners or 0), x, y)
    y = y + 22
    love.graphics.setColor(0.6, 0.6, 0.7)
    love.graphics.print("player                fitness  cells", x, y)
    y = y + 18
    local scores = territory.scores(game.state)
    for seat = 0, territory.SEATS_MAX - 1 do
        local id = game.state.seats[seat]
        if id then
            local player = game.state.players[id]
            colour(seat)
            love.graphics.rectangle("fill", x, y + 2, 12, 12, 2)
            if game.gone[id] then
                love.graphics.setColor(0.5, 0.5, 0.55)
            else
                love.graphics.setColor(1, 1, 1)
            end
            local marks = (id == game.host and "  HOST" or "") .. (id == game.me and "  you" or "")
                .. (game.gone[id] and "  " .. game.gone[id] or "")
            love.graphics.print(string.format("%s %s   %.3f   %3d%s", territory.letter(game.state, id), id,
                player.fitness / 1000, scores[id] or 0, marks), x + 18, y)
            y = y + 18
        end
    end
    y = y + 10
    local migration = game.migrations[#game.migrations]
    if game.migration then
        love.graphics.setColor(0.55, 0.35, 0.1)
        love.graphics.rectangle("fill", x, y, 350, 44, 4)
        love.graphics.setColor(1, 1, 1)
        love.graphics.printf(string.format("host %s lost at turn %d: electing...", name(game.migration.from),
            game.migration.turn), x + 8, y + 6, 334)
        y = y + 54
    elseif migration then
        local fresh = now() - migration.at < 15
        love.graphics.setColor(fresh and 0.6 or 0.25, fresh and 0.15 or 0.25, fresh and 0.2 or 0.3)
        love.graphics.rectangle("fill", x, y, 350, 62, 4)
        love.graphics.setColor(1, 1, 1)
        local turns = migration.pace and string.format(" = %.1f turns", migration.pause_ms / 1000 / migration.pace) or ""
        love.graphics.printf(string.format("HOST MIGRATED at turn %d\n%s took over from %s (%s)\nplay paused %d ms%s",
            migration.turn, name(migration.to), name(migration.from),
            migration.planned == nil and "host gone: left or lost?" or migration.planned and "planned handoff"
                or "host lost", migration.pause_ms, turns), x + 8, y + 6, 334)
        y = y + 72
    end
    love.graphics.setFont(fonts.small)
    love.graphics.setColor(0.75, 0.75, 0.8)
    for _, line in ipairs(game.log) do
        love.graphics.printf(line, x, y, 350)
        y = y + 15
    end
    if game.stopped then
        love.graphics.setColor(1, 0.5, 0.4)
        love.graphics.printf(game.stopped, x, y + 6, 350)
    end
end

local function draw_footer()
    love.graphics.setFont(fonts.small)
    love.graphics.setColor(0.55, 0.55, 0.65)
    local y = BOARD_Y + CELL * territory.SIDE + 8
    if game.invite then
        love.graphics.printf("invite: " .. game.invite, BOARD_X, y, 940)
    end
    love.graphics.print(string.format("click a free cell: claim it next turn   A autoplay (%s)   C copy invite   " ..
        "close the window: leave (hands the host over)", game.autoplay and "on" or "off"), BOARD_X, y + 30)
end

function love.draw()
    if game.menu then
        draw_menu()
        return
    end
    draw_header()
    draw_board()
    draw_panel()
    draw_footer()
end
