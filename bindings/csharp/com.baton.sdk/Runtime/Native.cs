// P/Invoke declarations of libbaton (ffi/include/baton.h), one to one. Every struct is
// blittable (integers and IntPtr only), so arrays of them cross without copying and a
// poll allocates nothing on the managed heap.
using System;
using System.Runtime.InteropServices;

namespace Baton
{
    /// <summary>baton_result: what every call returns (fixed numbers).</summary>
    public enum Result : uint
    {
        Ok = 0, WouldBlock = 1, NullPointer = 2, InvalidHandle = 3, InvalidArgument = 4,
        TooLarge = 5, NoSuchRequest = 6, Leaving = 7, Stopped = 8, AbiMismatch = 9,
        InvalidConfig = 10, InvalidInvite = 11, BufferTooSmall = 12, NotReady = 13,
        Panic = 14, Io = 15, NoAppNet = 16,
    }

    /// <summary>baton_event_kind.</summary>
    public enum EventKind : uint
    {
        Started = 1, ApplyTick = 2, RunTick = 3, MakeSnapshot = 4, Restore = 5,
        InputCommitted = 6, BecameHost = 7, LostHost = 8, HostChanged = 9,
        PlayerJoined = 10, PlayerLeft = 11, Promoted = 12, Demoted = 13,
        FitnessChanged = 14, TickOverrun = 15, Warning = 16, Left = 17, Fatal = 18,
    }

    /// <summary>baton_leave_outcome.</summary>
    public enum LeaveOutcome : uint
    {
        None = 0, HandedOver = 1, Removed = 2, RemovedWithoutSuccessor = 3,
        SessionEnded = 4, TimedOut = 5,
    }

    /// <summary>baton_tick_mode.</summary>
    public enum TickMode : uint { FixedRate = 0, TurnBased = 1 }

    /// <summary>baton_config. Fill it with <see cref="Native.baton_config_default"/>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Config
    {
        public uint TickMode;
        public uint TickHz;
        public uint TurnTimeoutMs;
        public uint Lockstep;
        public uint MaxVoters;
        public uint InputsInFlightMax;
        public uint InputBytesMax;
        public uint TickPayloadBytesMax;
        public uint TickRecordBytesMax;
        public uint EventsQueuedMax;
        public ulong SnapshotIntervalTicks;
        public uint Durability;
        public uint Reserved;
        public IntPtr BindAddr;
        public UIntPtr BindAddrLen;
        public IntPtr AdvertiseAddr;
        public UIntPtr AdvertiseAddrLen;
        public IntPtr DataDir;
        public UIntPtr DataDirLen;
        public IntPtr IdentityPath;
        public UIntPtr IdentityPathLen;
        public IntPtr NetAddr;
        public UIntPtr NetAddrLen;
        public uint NetDatagramBytesMax;
        public uint NetQueueDatagramsMax;
    }

    /// <summary>baton_event. Pointers are valid until the next poll of the session.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Event
    {
        public EventKind Kind;
        public LeaveOutcome LeaveOutcome;
        public ulong Tick;
        public ulong Sequence;
        public ulong Player;
        public uint PlayerSet;
        public uint Fitness;
        public IntPtr Data;
        public UIntPtr DataLen;
        public IntPtr Inputs;
        public UIntPtr InputsLen;
    }

    /// <summary>baton_input, read with <see cref="Session.InputAt"/>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Input
    {
        public ulong Player;
        public ulong Incarnation;
        public ulong Sequence;
        public IntPtr Data;
        public UIntPtr DataLen;
    }

    /// <summary>baton_session_status.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Status
    {
        public ulong Id;
        public ulong Host;
        public uint HostSet;
        public uint Hosting;
        public uint Voter;
        public uint Voters;
        public uint Learners;
        public uint Fitness;
        public ulong LastTick;
        public ulong InputsPending;
        public uint Leaving;
        public uint Stopped;
    }

    /// <summary>The C functions. Prefer <see cref="Session"/>.</summary>
    public static class Native
    {
        /// <summary>BATON_ABI_VERSION this binding was written against.</summary>
        public const uint AbiVersion = 1;
        const string Lib = "baton";

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern uint baton_abi_version();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr baton_result_name(uint result);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_config_default(out Config config);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_host(uint abiVersion, ref Config config, out ulong session);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_join(uint abiVersion, ref Config config, byte[] invite, UIntPtr inviteLen, out ulong session);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_poll(ulong session, [Out] Event[] events, UIntPtr capacity, out UIntPtr count);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_wait(ulong session, uint timeoutMs, out uint ready);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_submit_input(ulong session, byte[] data, UIntPtr len, out ulong sequence);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_commit_tick(ulong session, ulong tick, byte[] payload, UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_answer_snapshot(ulong session, ulong tick, byte[] snapshot, UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_set_game_score(ulong session, double score);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_network_changed(ulong session);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_leave(ulong session);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_stop(ulong session);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_status(ulong session, out Status status);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_invite(ulong session, byte[] buffer, UIntPtr capacity, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_session_free(ulong session);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_last_error_message(byte[] buffer, UIntPtr capacity, out UIntPtr len);

        /// <summary>BATON_NET_ADDR_BYTES_MAX.</summary>
        public const int NetAddrBytesMax = 16;
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_net_take(ulong session, byte[] peer, UIntPtr peerCapacity, out UIntPtr peerLen,
                                                   byte[] data, UIntPtr capacity, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_net_push(ulong session, byte[] peer, UIntPtr peerLen, byte[] data, UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern Result baton_net_unreachable(ulong session, byte[] peer, UIntPtr peerLen);
    }
}
