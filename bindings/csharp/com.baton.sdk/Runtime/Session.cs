// The C# face of a Baton session: a SafeHandle that frees on the finalizer thread (which
// libbaton allows), calls that throw BatonException with the library's code and
// message, and a Poll that fills a caller-owned Event array without allocating.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace Baton
{
    /// <summary>A failed libbaton call.</summary>
    public sealed class BatonException : Exception
    {
        /// <summary>The library's code.</summary>
        public readonly Result Code;

        internal BatonException(Result code, string call)
            : base(call + ": " + Marshal.PtrToStringAnsi(Native.baton_result_name((uint)code)) + ": " + LastErrorMessage())
        {
            Code = code;
        }

        /// <summary>The message of the last failed call on this thread.</summary>
        public static string LastErrorMessage()
        {
            UIntPtr needed;
            if (Native.baton_last_error_message(null, UIntPtr.Zero, out needed) != Result.Ok)
                return "";
            var buffer = new byte[(int)needed];
            UIntPtr len;
            if (Native.baton_last_error_message(buffer, needed, out len) != Result.Ok)
                return "";
            return Encoding.UTF8.GetString(buffer, 0, (int)len);
        }

        internal static void Check(Result result, string call)
        {
            if (result != Result.Ok)
                throw new BatonException(result, call);
        }
    }

    /// <summary>
    /// Owns one baton_session handle. The handle is 64 bits on every platform, so it is
    /// kept beside SafeHandle's IntPtr (which only marks it valid), and freed by
    /// ReleaseHandle on whatever thread the runtime picks.
    /// </summary>
    public sealed class SessionHandle : SafeHandle
    {
        /// <summary>The raw baton_session.</summary>
        public ulong Value { get; private set; }

        internal SessionHandle(ulong value) : base(IntPtr.Zero, true)
        {
            Value = value;
            SetHandle(new IntPtr(1));
        }

        /// <inheritdoc/>
        public override bool IsInvalid { get { return Value == 0; } }

        /// <inheritdoc/>
        protected override bool ReleaseHandle()
        {
            var freed = Native.baton_session_free(Value) == Result.Ok;
            Value = 0;
            return freed;
        }
    }

    /// <summary>
    /// One player's session. Call it from the game's thread: Poll once per frame, apply
    /// ticks, answer RunTick with CommitTick and MakeSnapshot with AnswerSnapshot.
    /// </summary>
    public sealed class Session : IDisposable
    {
        readonly SessionHandle handle;

        Session(ulong value) { handle = new SessionHandle(value); }

        /// <summary>The library's defaults, to adjust before Host or Join.</summary>
        public static Config DefaultConfig()
        {
            Config config;
            BatonException.Check(Native.baton_config_default(out config), "baton_config_default");
            return config;
        }

        /// <summary>
        /// Founds a session; Started (or Fatal) arrives in a poll. With netAddr (at most
        /// NetAddrBytesMax bytes, e.g. a Steam ID's 8 little-endian bytes) the session plays
        /// over the application's network instead of UDP: pump it with NetTake and NetPush.
        /// </summary>
        public static Session Host(Config config, string bind = null, byte[] netAddr = null)
        {
            return WithText(ref config, bind, netAddr, (ref Config c) =>
            {
                ulong value;
                BatonException.Check(Native.baton_host(Native.AbiVersion, ref c, out value), "baton_host");
                return new Session(value);
            });
        }

        /// <summary>Joins the session an invite code names; netAddr as for Host.</summary>
        public static Session Join(string invite, Config config, string bind = null, byte[] netAddr = null)
        {
            var code = Encoding.UTF8.GetBytes(invite);
            return WithText(ref config, bind, netAddr, (ref Config c) =>
            {
                ulong value;
                BatonException.Check(
                    Native.baton_join(Native.AbiVersion, ref c, code, new UIntPtr((uint)code.Length), out value),
                    "baton_join");
                return new Session(value);
            });
        }

        delegate Session Start(ref Config config);

        // The library copies what the config points at before baton_host or baton_join
        // returns, so the unmanaged copies live only for the call.
        static Session WithText(ref Config config, string bind, byte[] netAddr, Start start)
        {
            var owned = new List<IntPtr>();
            try
            {
                if (bind != null)
                {
                    var bytes = Encoding.UTF8.GetBytes(bind);
                    config.BindAddr = Unmanaged(bytes, owned);
                    config.BindAddrLen = new UIntPtr((uint)bytes.Length);
                }
                if (netAddr != null)
                {
                    config.NetAddr = Unmanaged(netAddr, owned);
                    config.NetAddrLen = new UIntPtr((uint)netAddr.Length);
                }
                return start(ref config);
            }
            finally
            {
                foreach (var pointer in owned)
                    Marshal.FreeHGlobal(pointer);
            }
        }

        static IntPtr Unmanaged(byte[] bytes, List<IntPtr> owned)
        {
            // AllocHGlobal(0) may return null, which the library reads as "not set".
            var pointer = Marshal.AllocHGlobal(Math.Max(bytes.Length, 1));
            owned.Add(pointer);
            Marshal.Copy(bytes, 0, pointer, bytes.Length);
            return pointer;
        }

        /// <summary>The raw handle.</summary>
        public ulong Handle { get { return handle.Value; } }

        /// <summary>Fills events[0..n] and returns n (0 when nothing waits). No allocation.</summary>
        public int Poll(Event[] events)
        {
            UIntPtr count;
            BatonException.Check(
                Native.baton_poll(handle.Value, events, new UIntPtr((uint)events.Length), out count), "baton_poll");
            return (int)count;
        }

        /// <summary>Blocks up to timeoutMs for an event (tools and tests, not a frame).</summary>
        public bool Wait(uint timeoutMs)
        {
            uint ready;
            BatonException.Check(Native.baton_wait(handle.Value, timeoutMs, out ready), "baton_wait");
            return ready != 0;
        }

        static readonly int InputSize = Marshal.SizeOf(typeof(Input));

        /// <summary>Input i of a polled ApplyTick or RunTick event.</summary>
        public static Input InputAt(ref Event ev, int i)
        {
            if (i < 0 || (ulong)i >= (ulong)ev.InputsLen)
                throw new ArgumentOutOfRangeException("i");
            var at = IntPtr.Add(ev.Inputs, i * InputSize);
            return new Input
            {
                Player = (ulong)Marshal.ReadInt64(at, 0),
                Incarnation = (ulong)Marshal.ReadInt64(at, 8),
                Sequence = (ulong)Marshal.ReadInt64(at, 16),
                Data = Marshal.ReadIntPtr(at, 24),
                DataLen = new UIntPtr((ulong)Marshal.ReadIntPtr(at, 24 + IntPtr.Size).ToInt64()),
            };
        }

        /// <summary>Copies len bytes at data into buffer (which must be large enough); returns len.</summary>
        public static int CopyBytes(IntPtr data, UIntPtr len, byte[] buffer)
        {
            var n = (int)len;
            if (n > 0)
                Marshal.Copy(data, buffer, 0, n);
            return n;
        }

        /// <summary>Sends an input; false while the window is full (try after InputCommitted).</summary>
        public bool SubmitInput(byte[] data, int len, out ulong sequence)
        {
            var result = Native.baton_submit_input(handle.Value, data, new UIntPtr((uint)len), out sequence);
            if (result == Result.WouldBlock)
                return false;
            BatonException.Check(result, "baton_submit_input");
            return true;
        }

        /// <summary>Answers RunTick; false if the request is no longer open.</summary>
        public bool CommitTick(ulong tick, byte[] payload, int len)
        {
            var result = Native.baton_commit_tick(handle.Value, tick, payload, new UIntPtr((uint)len));
            if (result == Result.NoSuchRequest)
                return false;
            BatonException.Check(result, "baton_commit_tick");
            return true;
        }

        /// <summary>Answers MakeSnapshot with the state's bytes.</summary>
        public void AnswerSnapshot(ulong tick, byte[] snapshot, int len)
        {
            BatonException.Check(
                Native.baton_answer_snapshot(handle.Value, tick, snapshot, new UIntPtr((uint)len)), "baton_answer_snapshot");
        }

        /// <summary>The game's part of this player's fitness, in [0, 1].</summary>
        public void SetGameScore(double score)
        {
            BatonException.Check(Native.baton_set_game_score(handle.Value, score), "baton_set_game_score");
        }

        /// <summary>
        /// The device's network changed (Application.internetReachability changed, or the
        /// platform said so): over the Internet the session re-registers at once, so the
        /// others reach it again in a round trip. Harmless on a LAN session.
        /// </summary>
        public void NetworkChanged()
        {
            BatonException.Check(Native.baton_network_changed(handle.Value), "baton_network_changed");
        }

        /// <summary>Starts a graceful leave; Left says how it ended.</summary>
        public void Leave() { BatonException.Check(Native.baton_leave(handle.Value), "baton_leave"); }

        /// <summary>Stops at once, as a crash would.</summary>
        public void Stop() { BatonException.Check(Native.baton_stop(handle.Value), "baton_stop"); }

        /// <summary>What this player knows of its session.</summary>
        public Status Status()
        {
            Status status;
            BatonException.Check(Native.baton_status(handle.Value, out status), "baton_status");
            return status;
        }

        /// <summary>The invite code, once Started.</summary>
        public string Invite()
        {
            UIntPtr needed, len;
            BatonException.Check(Native.baton_invite(handle.Value, null, UIntPtr.Zero, out needed), "baton_invite");
            var buffer = new byte[(int)needed];
            BatonException.Check(Native.baton_invite(handle.Value, buffer, needed, out len), "baton_invite");
            return Encoding.ASCII.GetString(buffer, 0, (int)len);
        }

        /// <summary>
        /// Takes the next datagram to carry over the application's network (Steam, EOS):
        /// its peer's address into peer (NetAddrBytesMax bytes) and its bytes into data.
        /// Returns the data length, 0 when none waits; no allocation.
        /// </summary>
        public int NetTake(byte[] peer, out int peerLen, byte[] data)
        {
            UIntPtr peerSize, len;
            BatonException.Check(
                Native.baton_net_take(handle.Value, peer, new UIntPtr((uint)peer.Length), out peerSize,
                                      data, new UIntPtr((uint)data.Length), out len), "baton_net_take");
            peerLen = (int)peerSize;
            return (int)len;
        }

        /// <summary>Hands in a datagram the network delivered from peer; false while the queue is full.</summary>
        public bool NetPush(byte[] peer, int peerLen, byte[] data, int len)
        {
            var result = Native.baton_net_push(handle.Value, peer, new UIntPtr((uint)peerLen), data, new UIntPtr((uint)len));
            if (result == Result.WouldBlock)
                return false;
            BatonException.Check(result, "baton_net_push");
            return true;
        }

        /// <summary>The network cannot reach peer (a closed P2P connection).</summary>
        public void NetUnreachable(byte[] peer, int peerLen)
        {
            BatonException.Check(Native.baton_net_unreachable(handle.Value, peer, new UIntPtr((uint)peerLen)),
                                 "baton_net_unreachable");
        }

        /// <summary>Stops the session and frees its handle.</summary>
        public void Dispose() { handle.Dispose(); }
    }
}
