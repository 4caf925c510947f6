// The C# binding under Mono against the real library: bad input, and a 3-player session
// in one process whose host is dropped while the game goes on, over UDP and over the
// application's own network (a stand-in for Steam or EOS). Exit code 0 = passed.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using Baton;

class Player
{
    public Session Session;
    public byte[] NetName;
    public ulong Tick;
    public ulong Hash = 14695981039346656037UL;
    public Dictionary<ulong, ulong> History = new Dictionary<ulong, ulong>();
    public HashSet<string> Applied = new HashSet<string>();
    public bool Started, Hosting, Stopped;
    public ulong Submitted, Committed;
    readonly Event[] events = new Event[64];
    readonly byte[] scratch = new byte[1 << 16];
    readonly byte[] input = new byte[8];

    public Player(Session session) { Session = session; History[0] = Hash; }

    static ulong Mix(ulong hash, byte[] bytes, int len)
    {
        for (int i = 0; i < len; i++)
            hash = (hash ^ bytes[i]) * 1099511628211UL;
        return hash;
    }

    public void Pump()
    {
        if (Stopped) return;
        int n = Session.Poll(events);
        for (int e = 0; e < n; e++)
        {
            switch (events[e].Kind)
            {
                case EventKind.Started: Started = true; break;
                case EventKind.RunTick:
                    // The payload: how many inputs the host saw this tick.
                    var payload = BitConverter.GetBytes((ulong)events[e].InputsLen);
                    Session.CommitTick(events[e].Tick, payload, payload.Length);
                    break;
                case EventKind.ApplyTick:
                    if (events[e].Tick != Tick + 1) throw new Exception("ticks out of order at " + events[e].Tick);
                    for (int i = 0; i < (int)events[e].InputsLen; i++)
                    {
                        var item = Session.InputAt(ref events[e], i);
                        var key = item.Player + "/" + item.Incarnation + "/" + item.Sequence;
                        if (!Applied.Add(key)) throw new Exception("input applied twice: " + key);
                        int len = Session.CopyBytes(item.Data, item.DataLen, scratch);
                        Hash = Mix(Hash, scratch, len);
                    }
                    Tick = events[e].Tick;
                    Hash = Mix(Hash, BitConverter.GetBytes(Tick), 8);
                    Hash = Mix(Hash, scratch, Session.CopyBytes(events[e].Data, events[e].DataLen, scratch));
                    History[Tick] = Hash;
                    break;
                case EventKind.MakeSnapshot:
                    if (events[e].Tick != Tick) throw new Exception("snapshot at another tick");
                    var image = new byte[16];
                    BitConverter.GetBytes(Tick).CopyTo(image, 0);
                    BitConverter.GetBytes(Hash).CopyTo(image, 8);
                    Session.AnswerSnapshot(events[e].Tick, image, image.Length);
                    break;
                case EventKind.Restore:
                    int size = Session.CopyBytes(events[e].Data, events[e].DataLen, scratch);
                    if (size != 16) throw new Exception("snapshot of " + size + " bytes");
                    Tick = BitConverter.ToUInt64(scratch, 0);
                    Hash = BitConverter.ToUInt64(scratch, 8);
                    History[Tick] = Hash;
                    break;
                case EventKind.InputCommitted: Committed = events[e].Sequence; break;
                case EventKind.BecameHost: Hosting = true; break;
                case EventKind.LostHost: Hosting = false; break;
                case EventKind.Fatal:
                case EventKind.Left: Stopped = true; break;
            }
        }
        if (Started && !Stopped && Submitted == Committed)
        {
            BitConverter.GetBytes(Submitted + 1).CopyTo(input, 0);
            ulong sequence;
            if (Session.SubmitInput(input, input.Length, out sequence)) Submitted = sequence;
        }
    }
}

// A platform's P2P messaging (SteamNetworkingMessages, EOS P2P) as the game sees it: players
// known by opaque ids, unreliable datagrams of at most 1170 bytes (EOS's packet size), some
// lost, some late (delivered a frame later, so reordered), and a closed connection reported
// for a player who has gone. Every frame the game carries what each session wants sent.
class Platform
{
    public const int DatagramMax = 1170;
    public long Carried;
    readonly List<Player> players;
    readonly List<KeyValuePair<Player, byte[]>> late = new List<KeyValuePair<Player, byte[]>>();
    readonly List<Player> lateFrom = new List<Player>();
    readonly byte[] peer = new byte[Native.NetAddrBytesMax];
    readonly byte[] datagram = new byte[DatagramMax];

    public Platform(List<Player> players) { this.players = players; }

    Player Named(byte[] name, int len)
    {
        foreach (var p in players)
        {
            if (p.NetName.Length != len) continue;
            bool same = true;
            for (int i = 0; i < len && same; i++) same = p.NetName[i] == name[i];
            if (same) return p;
        }
        return null;
    }

    void Deliver(Player from, Player to, byte[] data, int len)
    {
        if (to.Stopped)
        {
            from.Session.NetUnreachable(to.NetName, to.NetName.Length);
            return;
        }
        // A full queue is the platform's loss, as a real one drops what nobody reads.
        to.Session.NetPush(from.NetName, from.NetName.Length, data, len);
    }

    public void Carry()
    {
        for (int i = 0; i < late.Count; i++)
            Deliver(lateFrom[i], late[i].Key, late[i].Value, late[i].Value.Length);
        late.Clear();
        lateFrom.Clear();
        foreach (var from in players)
        {
            if (from.Stopped) continue;
            for (;;)
            {
                int peerLen;
                int len = from.Session.NetTake(peer, out peerLen, datagram);
                if (len == 0) break;
                var to = Named(peer, peerLen);
                Carried++;
                if (to == null || Carried % 50 == 0) continue;
                if (Carried % 7 == 0)
                {
                    var copy = new byte[len];
                    Array.Copy(datagram, copy, len);
                    late.Add(new KeyValuePair<Player, byte[]>(to, copy));
                    lateFrom.Add(from);
                    continue;
                }
                Deliver(from, to, datagram, len);
            }
        }
    }
}

static class SessionTests
{
    static int failures;

    static void Expect(bool condition, string what)
    {
        if (!condition) { Console.Error.WriteLine("expected: " + what); failures++; }
    }

    static void PumpUntil(List<Player> players, Func<bool> done, Platform platform = null)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < 30)
        {
            foreach (var p in players) p.Pump();
            if (platform != null) platform.Carry();
            if (done()) return;
            Thread.Sleep(2);
        }
        throw new Exception("timed out");
    }

    static void BadInput()
    {
        var config = Session.DefaultConfig();
        config.TickMode = 77;
        try { Session.Host(config); Expect(false, "an unknown tick mode is refused"); }
        catch (BatonException e)
        {
            Expect(e.Code == Result.InvalidArgument, "InvalidArgument for a bad enum");
            Expect(e.Message.Contains("tick_mode"), "the message names the field: " + e.Message);
        }
        try { Session.Join("baton1-nope", Session.DefaultConfig()); Expect(false, "a bad invite is refused"); }
        catch (BatonException e) { Expect(e.Code == Result.InvalidInvite, "InvalidInvite"); }
        ulong handle;
        var good = Session.DefaultConfig();
        Expect(Native.baton_host(Native.AbiVersion + 1, ref good, out handle) == Result.AbiMismatch, "ABI mismatch");
        var session = Session.Host(Session.DefaultConfig());
        var raw = session.Handle;
        ulong sequence;
        try { session.SubmitInput(new byte[1], 0, out sequence); Expect(false, "an empty input is refused"); }
        catch (BatonException e) { Expect(e.Code == Result.InvalidArgument, "InvalidArgument for length 0"); }
        session.NetworkChanged(); // a LAN session: nothing to do, no error
        session.Dispose();
        session.Dispose();
        Expect(Native.baton_session_free(raw) == Result.InvalidHandle, "a second free is refused");
        Expect(Native.baton_network_changed(raw) == Result.InvalidHandle, "network_changed on a stale handle");
        Expect(Native.baton_leave(raw) == Result.InvalidHandle, "a stale handle is refused");
        using (var udp = Session.Host(Session.DefaultConfig()))
        {
            int peerLen;
            try { udp.NetTake(new byte[16], out peerLen, new byte[1500]); Expect(false, "net calls need a network"); }
            catch (BatonException e) { Expect(e.Code == Result.NoAppNet, "NoAppNet on a UDP session"); }
        }
    }

    static Player Start(string invite, uint tickHz, byte[] netName)
    {
        var config = Session.DefaultConfig();
        config.TickHz = tickHz;
        if (netName != null)
            config.NetDatagramBytesMax = Platform.DatagramMax;
        var session = invite == null
            ? Session.Host(config, null, netName)
            : Session.Join(invite, config, null, netName);
        var player = new Player(session);
        player.NetName = netName;
        return player;
    }

    static void HostDropped(bool ownNetwork)
    {
        var players = new List<Player>();
        Platform platform = ownNetwork ? new Platform(players) : null;
        // Steam IDs as their 8 little-endian bytes, as docs/own-network.md advises.
        Func<int, byte[]> name = i => ownNetwork ? BitConverter.GetBytes(76561198000000001UL + (ulong)i) : null;
        var host = Start(null, 60, name(0));
        players.Add(host);
        PumpUntil(players, () => host.Started, platform);
        var invite = host.Session.Invite();
        for (int i = 1; i < 3; i++)
            players.Add(Start(invite, 60, name(i)));
        PumpUntil(players, () => players.TrueForAll(p => p.Session.Status().Voter == 1 && p.Committed >= 3), platform);

        Expect(host.Hosting, "the founder hosts");
        host.Session.Stop();
        host.Stopped = true;
        var droppedAt = host.Tick;
        var survivors = players.GetRange(1, 2);
        PumpUntil(players, () => survivors.TrueForAll(p => p.Tick >= droppedAt + 30)
                                 && survivors.FindAll(p => p.Hosting).Count == 1, platform);
        var a = survivors[0];
        var b = survivors[1];
        foreach (var entry in a.History)
        {
            ulong other;
            if (b.History.TryGetValue(entry.Key, out other))
                Expect(other == entry.Value, "equal state at tick " + entry.Key);
        }
        Expect(a.History[droppedAt] == host.History[droppedAt], "the dropped host's last tick survives");
        Expect(b.History[droppedAt] == host.History[droppedAt], "the dropped host's last tick survives");
        Console.WriteLine("csharp" + (ownNetwork ? " over the application's network (" + platform.Carried + " datagrams)" : "")
                          + ": host dropped at tick " + droppedAt + "; survivors at " + a.Tick + " and " + b.Tick);
        foreach (var p in players) p.Session.Dispose();
    }

    static int Main()
    {
        Expect(Native.baton_abi_version() == Native.AbiVersion, "the library's ABI is the binding's");
        BadInput();
        HostDropped(false);
        HostDropped(true);
        // Sessions left to the finalizer are freed on its thread.
        Session.Host(Session.DefaultConfig());
        GC.Collect();
        GC.WaitForPendingFinalizers();
        if (failures > 0) { Console.Error.WriteLine(failures + " expectation(s) failed"); return 1; }
        Console.WriteLine("csharp tests: ok");
        return 0;
    }
}
