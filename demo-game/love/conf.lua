function love.conf(t)
    t.identity = "baton-territory"
    t.version = "11.4"
    t.window.title = "Territory on Baton"
    t.window.width = 980
    t.window.height = 680
    t.window.vsync = 0 -- main.lua paces frames itself (Xvfb has no vertical sync)
    -- No sound: the game makes none, and headless machines have no audio device.
    t.modules.audio = false
    t.modules.sound = false
    t.modules.joystick = false
    t.modules.physics = false
    t.modules.video = false
end
