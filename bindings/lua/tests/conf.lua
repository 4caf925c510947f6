-- The binding's tests run in LÖVE's own LuaJIT with no window, so they need no display.
function love.conf(t)
    t.identity = "baton-lua-tests"
    t.window = nil
    t.modules.window = false
    t.modules.graphics = false
    t.modules.audio = false
    t.modules.sound = false
    t.modules.joystick = false
    t.modules.physics = false
    t.modules.video = false
end
