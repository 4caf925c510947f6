/* The C test suite of libbaton: every bad input the header promises to refuse, and a
 * 3-player Territory match whose host is dropped mid-game. Built with -Wall -Werror and
 * run under AddressSanitizer (bindings/c/run-tests.sh); `bad-input` alone also runs
 * under valgrind. */
#include "territory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define EXPECT(condition)                                                              \
    do {                                                                               \
        if (!(condition)) {                                                            \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #condition); \
            failures++;                                                                \
        }                                                                              \
    } while (0)

#define EXPECT_RESULT(call, expected)                                                   \
    do {                                                                                \
        baton_result got_ = (call);                                                     \
        if (got_ != (expected)) {                                                       \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, \
                    #call, baton_result_name(got_), baton_result_name(expected));      \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

static size_t last_error(char *buffer, size_t capacity) {
    size_t len = 0;
    check(baton_last_error_message((uint8_t *)buffer, capacity, &len), "baton_last_error_message");
    return len;
}

static int has_started(player *players, int count) {
    for (int i = 0; i < count; i++) {
        if (!players[i].started) {
            return 0;
        }
    }
    return 1;
}

static void bad_input(void) {
    baton_config config;
    territory_config(&config);
    baton_session session = 0;
    baton_event events[4];
    size_t count = 0;
    uint64_t sequence = 0;
    uint8_t byte = 7;
    char message[512];

    /* Null pointers, and out-parameters left alone on failure. */
    EXPECT_RESULT(baton_config_default(NULL), BATON_RESULT_NULL_POINTER);
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, NULL, &session), BATON_RESULT_NULL_POINTER);
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &config, NULL), BATON_RESULT_NULL_POINTER);
    EXPECT(session == 0);
    EXPECT(last_error(message, sizeof message) > 0);

    /* A caller built against another ABI. */
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION + 1, &config, &session), BATON_RESULT_ABI_MISMATCH);
    size_t abi_len = last_error(message, sizeof message);
    EXPECT(abi_len > 0 && memmem(message, abi_len, "ABI version", 11) != NULL);

    /* Unknown enum values and bad settings. */
    size_t len = 0;
    baton_config bad = config;
    bad.tick_mode = 99;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    bad = config;
    bad.tick_mode = BATON_TICK_MODE_FIXED_RATE;
    bad.tick_hz = 0;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    len = last_error(message, sizeof message);
    EXPECT(len > 0 && memmem(message, len, "tick_hz", 7) != NULL);
    bad = config;
    bad.durability = 7;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    bad = config;
    bad.lockstep = 2;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    bad = config;
    bad.reserved = 1;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    bad = config;
    bad.max_voters = 0;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_CONFIG);
    len = last_error(message, sizeof message);
    EXPECT(len > 0 && memmem(message, len, "max_voters", 10) != NULL);
    bad = config;
    bad.bind_addr = (const uint8_t *)"not an address";
    bad.bind_addr_len = strlen("not an address");
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    bad = config;
    bad.bind_addr = NULL;
    bad.bind_addr_len = 9;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_NULL_POINTER);
    bad = config;
    bad.bind_addr = (const uint8_t *)"\xff\xfe";
    bad.bind_addr_len = 2;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    EXPECT(session == 0);

    /* Invites that are not invites. */
    const char *garbage = "baton1-notaninvite";
    EXPECT_RESULT(baton_join(BATON_ABI_VERSION, &config, (const uint8_t *)garbage, strlen(garbage), &session),
                  BATON_RESULT_INVALID_INVITE);
    EXPECT_RESULT(baton_join(BATON_ABI_VERSION, &config, NULL, 0, &session), BATON_RESULT_NULL_POINTER);

    /* Handles that were never issued. */
    EXPECT_RESULT(baton_poll(0, events, 4, &count), BATON_RESULT_INVALID_HANDLE);
    EXPECT_RESULT(baton_poll(0xdeadbeef00000001ull, events, 4, &count), BATON_RESULT_INVALID_HANDLE);
    EXPECT_RESULT(baton_leave(12345), BATON_RESULT_INVALID_HANDLE);
    EXPECT_RESULT(baton_session_free(0), BATON_RESULT_INVALID_HANDLE);

    /* A live session: bad lengths, bad capacities, bad scores. */
    player a;
    player_start(&a, 1, NULL, 0, NULL);
    EXPECT(a.session != 0);
    EXPECT_RESULT(baton_poll(a.session, NULL, 4, &count), BATON_RESULT_NULL_POINTER);
    EXPECT_RESULT(baton_poll(a.session, events, 0, &count), BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_poll(a.session, events, BATON_POLL_EVENTS_MAX + 1, &count),
                  BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_poll(a.session, events, 4, NULL), BATON_RESULT_NULL_POINTER);
    EXPECT_RESULT(baton_submit_input(a.session, &byte, 0, &sequence), BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_submit_input(a.session, NULL, 1, &sequence), BATON_RESULT_NULL_POINTER);
    EXPECT_RESULT(baton_submit_input(a.session, &byte, (size_t)-1, &sequence), BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_submit_input(a.session, &byte, 1, NULL), BATON_RESULT_NULL_POINTER);
    uint8_t big[8192] = {0};
    EXPECT_RESULT(baton_submit_input(a.session, big, sizeof big, &sequence), BATON_RESULT_TOO_LARGE);
    EXPECT(sequence == 0);
    EXPECT_RESULT(baton_set_game_score(a.session, 1.5), BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_set_game_score(a.session, 0.0 / 0.0), BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_set_game_score(a.session, 0.5), BATON_RESULT_OK);
    EXPECT_RESULT(baton_network_changed(a.session), BATON_RESULT_OK); /* a LAN session: nothing to do */
    EXPECT_RESULT(baton_commit_tick(a.session, 999, NULL, 0), BATON_RESULT_NO_SUCH_REQUEST);
    EXPECT_RESULT(baton_commit_tick(a.session, 999, NULL, 4), BATON_RESULT_NULL_POINTER);
    baton_session_status status;
    EXPECT_RESULT(baton_status(a.session, NULL), BATON_RESULT_NULL_POINTER);

    /* Wait for the start, then the invite with the size-query convention. */
    player *players = &a;
    EXPECT(match_pump(players, 1, has_started, 10000) == 1);
    size_t invite_len = 0;
    EXPECT_RESULT(baton_invite(a.session, NULL, 0, &invite_len), BATON_RESULT_OK);
    EXPECT(invite_len > 7);
    char small[4];
    size_t untouched = 77;
    EXPECT_RESULT(baton_invite(a.session, (uint8_t *)small, sizeof small, &untouched), BATON_RESULT_BUFFER_TOO_SMALL);
    EXPECT(untouched == 77);
    char invite[256];
    EXPECT_RESULT(baton_invite(a.session, (uint8_t *)invite, sizeof invite, &invite_len), BATON_RESULT_OK);
    EXPECT(strncmp(invite, "baton1-", 7) == 0);
    EXPECT_RESULT(baton_status(a.session, &status), BATON_RESULT_OK);
    EXPECT(status.id == a.id && status.stopped == 0);

    /* The last error message, with the size query, is not changed by reading it. */
    EXPECT_RESULT(baton_leave(777), BATON_RESULT_INVALID_HANDLE);
    size_t needed = 0;
    EXPECT_RESULT(baton_last_error_message(NULL, 0, &needed), BATON_RESULT_OK);
    EXPECT(needed > 0);
    EXPECT_RESULT(baton_last_error_message(NULL, 0, NULL), BATON_RESULT_NULL_POINTER);
    EXPECT(last_error(message, sizeof message) == needed);

    /* A request of one session answered on another: refused, the other unharmed. */
    player b;
    player_start(&b, 2, NULL, 0, NULL);
    EXPECT(match_pump(&b, 1, has_started, 10000) == 1);
    EXPECT_RESULT(baton_answer_snapshot(b.session, 12345, &byte, 1), BATON_RESULT_NO_SUCH_REQUEST);

    /* Free, then every use of the stale handle (and a second free) is refused. */
    baton_session stale = a.session;
    EXPECT_RESULT(baton_session_free(stale), BATON_RESULT_OK);
    EXPECT_RESULT(baton_session_free(stale), BATON_RESULT_INVALID_HANDLE);
    EXPECT_RESULT(baton_poll(stale, events, 4, &count), BATON_RESULT_INVALID_HANDLE);
    EXPECT_RESULT(baton_submit_input(stale, &byte, 1, &sequence), BATON_RESULT_INVALID_HANDLE);
    /* The freed slot is reused by the next session; the old handle still names nothing. */
    player c;
    player_start(&c, 3, NULL, 0, NULL);
    EXPECT(c.session != stale);
    EXPECT_RESULT(baton_leave(stale), BATON_RESULT_INVALID_HANDLE);
    EXPECT_RESULT(baton_network_changed(stale), BATON_RESULT_INVALID_HANDLE);
    EXPECT_RESULT(baton_status(c.session, &status), BATON_RESULT_OK);

    /* The application's network: calls on a UDP session, bad addresses and datagrams. */
    uint8_t peer[BATON_NET_ADDR_BYTES_MAX], datagram[1400];
    size_t peer_len = 0, datagram_len = 0;
    EXPECT_RESULT(baton_net_take(c.session, peer, sizeof peer, &peer_len, datagram, sizeof datagram, &datagram_len),
                  BATON_RESULT_NO_APP_NET);
    bad = config;
    bad.net_addr = (const uint8_t *)"x";
    bad.net_addr_len = 1;
    bad.net_datagram_bytes_max = 100;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    bad.net_datagram_bytes_max = 1170;
    bad.net_addr_len = 17;
    EXPECT_RESULT(baton_host(BATON_ABI_VERSION, &bad, &session), BATON_RESULT_INVALID_ARGUMENT);
    bad.net_addr_len = 1;
    player d;
    memset(&d, 0, sizeof d);
    check(baton_host(BATON_ABI_VERSION, &bad, &d.session), "baton_host on a network");
    EXPECT_RESULT(baton_net_take(d.session, peer, 4, &peer_len, datagram, sizeof datagram, &datagram_len),
                  BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_net_push(d.session, (const uint8_t *)"y", 1, (const uint8_t *)"\x42garbage", 8),
                  BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_net_push(d.session, (const uint8_t *)"y", 1, (const uint8_t *)"\x01\x00", 2),
                  BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_net_push(d.session, (const uint8_t *)"y", 1, big, 1171), BATON_RESULT_TOO_LARGE);
    EXPECT_RESULT(baton_net_push(d.session, NULL, 0, big, 10), BATON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(baton_net_push(d.session, (const uint8_t *)"y", 1, NULL, 10), BATON_RESULT_NULL_POINTER);
    EXPECT_RESULT(baton_net_push(d.session, (const uint8_t *)"y", 1, (const uint8_t *)"\x00quic?", 6),
                  BATON_RESULT_OK); /* well framed: QUIC itself drops it, unauthenticated */
    EXPECT_RESULT(baton_net_unreachable(d.session, (const uint8_t *)"y", 1), BATON_RESULT_OK);
    EXPECT_RESULT(baton_session_free(d.session), BATON_RESULT_OK);

    /* A stopped session says so. */
    EXPECT_RESULT(baton_stop(b.session), BATON_RESULT_OK);
    EXPECT_RESULT(baton_submit_input(b.session, &byte, 1, &sequence), BATON_RESULT_STOPPED);
    EXPECT_RESULT(baton_session_free(b.session), BATON_RESULT_OK);
    EXPECT_RESULT(baton_session_free(c.session), BATON_RESULT_OK);
    EXPECT(baton_abi_version() == BATON_ABI_VERSION);
    EXPECT(strcmp(baton_result_name(9999), "BATON_RESULT_UNKNOWN") == 0);
}

/* ---- a 3-player match with the host dropped ---------------------------------------- */

#define MATCH_PLAYERS 3
static player match[MATCH_PLAYERS];
static uint64_t host_stopped_at;

static int everyone_voting_at_tick_8(player *players, int count) {
    for (int i = 0; i < count; i++) {
        baton_session_status status;
        check(baton_status(players[i].session, &status), "baton_status");
        if (!status.voter || players[i].state.tick < 8) {
            return 0;
        }
    }
    return 1;
}

static int survivors_went_on(player *players, int count) {
    int hosting = 0;
    for (int i = 0; i < count; i++) {
        if (players[i].stopped) {
            continue;
        }
        if (players[i].state.tick < host_stopped_at + 10) {
            return 0;
        }
        hosting += players[i].hosting;
    }
    return hosting == 1;
}

static const char *net_names[MATCH_PLAYERS] = {"steam:1001", "steam:1002", "steam:1003"};

/* own_network: the players reach each other only through net_carry, by name. */
static void host_dropped_mid_game(int own_network) {
    memset(match, 0, sizeof match);
    player_start(&match[0], 11, NULL, 0, own_network ? net_names[0] : NULL);
    EXPECT(match_pump(match, 1, has_started, 10000) == 1);
    char invite[256];
    size_t invite_len = 0;
    check(baton_invite(match[0].session, (uint8_t *)invite, sizeof invite, &invite_len), "baton_invite");
    for (int i = 1; i < MATCH_PLAYERS; i++) {
        player_start(&match[i], 11 + i, invite, invite_len, own_network ? net_names[i] : NULL);
    }
    EXPECT(match_pump(match, MATCH_PLAYERS, everyone_voting_at_tick_8, 30000) == 1);

    /* The host crashes: it stops without handing over. */
    player *host = &match[0];
    EXPECT(host->hosting);
    check(baton_stop(host->session), "baton_stop");
    host->stopped = 1;
    host_stopped_at = host->state.tick;
    EXPECT(match_pump(match, MATCH_PLAYERS, survivors_went_on, 30000) == 1);

    /* Equal state on the survivors, tick by tick, and the dropped host's last applied
     * tick (committed) is in their history with the same board. */
    player *a = &match[1], *b = &match[2];
    uint64_t common = a->state.tick < b->state.tick ? a->state.tick : b->state.tick;
    for (uint64_t t = 1; t <= common; t++) {
        if (a->hash[t] != 0 && b->hash[t] != 0 && a->hash[t] != b->hash[t]) {
            fprintf(stderr, "survivors differ at tick %llu\n", (unsigned long long)t);
            failures++;
            break;
        }
    }
    EXPECT(a->hash[host_stopped_at] == host->hash[host_stopped_at]);
    EXPECT(b->hash[host_stopped_at] == host->hash[host_stopped_at]);
    EXPECT(a->hosting + b->hosting == 1);
    EXPECT(a->ticks_run + b->ticks_run > 0);
    EXPECT(a->last_committed > 0 && b->last_committed > 0);
    printf("match%s: host dropped at tick %llu; survivors at ticks %llu and %llu, %llu inputs applied once each\n",
           own_network ? " over the application's network" : "", (unsigned long long)host_stopped_at,
           (unsigned long long)a->state.tick,
           (unsigned long long)b->state.tick, (unsigned long long)a->inputs_applied);
    for (int i = 0; i < MATCH_PLAYERS; i++) {
        check(baton_session_free(match[i].session), "baton_session_free");
    }
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    if (only == NULL || strcmp(only, "bad-input") == 0) {
        bad_input();
    }
    if (only == NULL || strcmp(only, "match") == 0) {
        host_dropped_mid_game(0);
    }
    if (only == NULL || strcmp(only, "own-network") == 0) {
        host_dropped_mid_game(1);
    }
    if (failures != 0) {
        fprintf(stderr, "%d expectation(s) failed\n", failures);
        return 1;
    }
    printf("c tests: ok\n");
    return 0;
}
