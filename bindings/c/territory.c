#include "territory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENTS_PER_POLL 64

void check(baton_result result, const char *call) {
    if (result == BATON_RESULT_OK) {
        return;
    }
    uint8_t message[512];
    size_t len = 0;
    if (baton_last_error_message(message, sizeof message, &len) != BATON_RESULT_OK) {
        len = 0;
    }
    fprintf(stderr, "%s: %s: %.*s\n", call, baton_result_name(result), (int)len, (const char *)message);
    exit(1);
}

void territory_config(baton_config *config) {
    check(baton_config_default(config), "baton_config_default");
    config->tick_mode = BATON_TICK_MODE_TURN_BASED;
    config->turn_timeout_ms = 150;
    config->lockstep = 0;
}

uint64_t board_hash(const board *state) {
    uint64_t hash = 1469598103934665603ull; /* FNV-1a */
    const uint8_t *bytes = (const uint8_t *)state;
    for (size_t i = 0; i < sizeof *state; i++) {
        hash = (hash ^ bytes[i]) * 1099511628211ull;
    }
    return hash;
}

void player_start(player *p, uint32_t seed, const char *invite, size_t invite_len, const char *net_name) {
    memset(p, 0, sizeof *p);
    p->rng = seed * 2654435761u + 1;
    p->hash[0] = board_hash(&p->state);
    baton_config config;
    territory_config(&config);
    if (net_name != NULL) {
        p->net_name_len = strlen(net_name);
        memcpy(p->net_name, net_name, p->net_name_len);
        config.net_addr = p->net_name;
        config.net_addr_len = p->net_name_len;
        config.net_datagram_bytes_max = 1170; /* EOS P2P's packet size: QUIC in fragments */
    }
    if (invite == NULL) {
        check(baton_host(BATON_ABI_VERSION, &config, &p->session), "baton_host");
    } else {
        check(baton_join(BATON_ABI_VERSION, &config, (const uint8_t *)invite, invite_len, &p->session),
              "baton_join");
    }
}

static uint32_t next_random(player *p) {
    p->rng = p->rng * 1664525u + 1013904223u;
    return p->rng >> 8;
}

static int fail(player *p, const char *what, uint64_t value) {
    snprintf(p->failure, sizeof p->failure, "%s (%llu)", what, (unsigned long long)value);
    return -1;
}

/* The host's decision for one turn: each claimed cell goes to the first player who
 * claimed it while free. Payload: (cell: 1 byte, owner: 8 bytes little-endian)*. */
static int run_tick(player *p, const baton_event *event) {
    uint8_t payload[9 * 256];
    size_t len = 0;
    uint8_t taken[BOARD_CELLS] = {0};
    for (size_t i = 0; i < event->inputs_len && len + 9 <= sizeof payload; i++) {
        const baton_input *input = &event->inputs[i];
        if (input->data_len != 1 || input->data[0] >= BOARD_CELLS) {
            continue; /* a malformed claim is ignored, as a game would */
        }
        uint8_t cell = input->data[0];
        if (p->state.owner[cell] != 0 || taken[cell]) {
            continue;
        }
        taken[cell] = 1;
        payload[len] = cell;
        for (int b = 0; b < 8; b++) {
            payload[len + 1 + b] = (uint8_t)(input->player >> (8 * b));
        }
        len += 9;
    }
    baton_result result = baton_commit_tick(p->session, event->tick, payload, len);
    if (result == BATON_RESULT_NO_SUCH_REQUEST) {
        return 0; /* hosting moved on meanwhile */
    }
    check(result, "baton_commit_tick");
    p->ticks_run++;
    return 0;
}

static int apply_tick(player *p, const baton_event *event) {
    if (event->tick != p->state.tick + 1) {
        return fail(p, "ticks out of order", event->tick);
    }
    if (event->tick > TICKS_MAX) {
        return fail(p, "match longer than TICKS_MAX", event->tick);
    }
    if (event->data_len % 9 != 0) {
        return fail(p, "malformed tick payload", event->data_len);
    }
    for (size_t i = 0; i < event->inputs_len; i++) {
        const baton_input *input = &event->inputs[i];
        for (uint64_t s = 0; s < p->seen; s++) {
            if (p->seen_player[s] == input->player && p->seen_sequence[s] == input->sequence) {
                return fail(p, "an input was applied twice", input->sequence);
            }
        }
        if (p->seen < TICKS_MAX) {
            p->seen_player[p->seen] = input->player;
            p->seen_sequence[p->seen] = input->sequence;
            p->seen++;
        }
        p->inputs_applied++;
    }
    for (size_t at = 0; at < event->data_len; at += 9) {
        uint8_t cell = event->data[at];
        uint64_t owner = 0;
        for (int b = 0; b < 8; b++) {
            owner |= (uint64_t)event->data[at + 1 + b] << (8 * b);
        }
        if (cell >= BOARD_CELLS) {
            return fail(p, "claim outside the board", cell);
        }
        p->state.owner[cell] = owner;
    }
    p->state.tick = event->tick;
    p->hash[event->tick] = board_hash(&p->state);
    return 0;
}

static int restore(player *p, const baton_event *event) {
    if (event->data_len == 0) {
        /* The initial image: the empty board. */
        memset(&p->state, 0, sizeof p->state);
    } else if (event->data_len == sizeof p->state) {
        memcpy(&p->state, event->data, sizeof p->state);
    } else {
        return fail(p, "snapshot of the wrong size", event->data_len);
    }
    if (p->state.tick != event->tick || event->tick > TICKS_MAX) {
        return fail(p, "snapshot of another tick", event->tick);
    }
    p->hash[event->tick] = board_hash(&p->state);
    return 0;
}

static void submit_claim(player *p) {
    if (p->waiting || !p->started || p->stopped) {
        return;
    }
    uint8_t cell = (uint8_t)(next_random(p) % BOARD_CELLS);
    uint64_t sequence = 0;
    baton_result result = baton_submit_input(p->session, &cell, 1, &sequence);
    if (result == BATON_RESULT_WOULD_BLOCK || result == BATON_RESULT_STOPPED) {
        return;
    }
    check(result, "baton_submit_input");
    p->waiting = 1;
}

int player_pump(player *p) {
    if (p->stopped) {
        return 0;
    }
    baton_event events[EVENTS_PER_POLL];
    size_t count = 0;
    check(baton_poll(p->session, events, EVENTS_PER_POLL, &count), "baton_poll");
    for (size_t i = 0; i < count; i++) {
        const baton_event *event = &events[i];
        int status = 0;
        switch (event->kind) {
        case BATON_EVENT_KIND_STARTED:
            p->started = 1;
            p->id = event->player;
            break;
        case BATON_EVENT_KIND_RUN_TICK:
            status = run_tick(p, event);
            break;
        case BATON_EVENT_KIND_APPLY_TICK:
            status = apply_tick(p, event);
            break;
        case BATON_EVENT_KIND_MAKE_SNAPSHOT:
            if (event->tick != p->state.tick) {
                return fail(p, "snapshot asked at another tick", event->tick);
            }
            check(baton_answer_snapshot(p->session, event->tick, (const uint8_t *)&p->state, sizeof p->state),
                  "baton_answer_snapshot");
            break;
        case BATON_EVENT_KIND_RESTORE:
            status = restore(p, event);
            break;
        case BATON_EVENT_KIND_INPUT_COMMITTED:
            if (event->sequence != p->last_committed + 1) {
                return fail(p, "own inputs committed out of order", event->sequence);
            }
            p->last_committed = event->sequence;
            p->waiting = 0;
            break;
        case BATON_EVENT_KIND_BECAME_HOST:
            p->hosting = 1;
            break;
        case BATON_EVENT_KIND_LOST_HOST:
            p->hosting = 0;
            break;
        case BATON_EVENT_KIND_FATAL:
        case BATON_EVENT_KIND_LEFT:
            p->stopped = 1;
            break;
        default:
            break;
        }
        if (status != 0) {
            return status;
        }
    }
    submit_claim(p);
    return 0;
}

#define HELD_MAX 256
#define DATAGRAM_MAX 1400

typedef struct held_datagram {
    int to;
    int from;
    uint8_t data[DATAGRAM_MAX];
    size_t len;
} held_datagram;

static held_datagram held[HELD_MAX];
static int held_count;
static unsigned long carried;

static int player_named(player *players, int count, const uint8_t *name, size_t len) {
    for (int i = 0; i < count; i++) {
        if (players[i].net_name_len == len && memcmp(players[i].net_name, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

static void deliver(player *players, int from, int to, const uint8_t *data, size_t len) {
    if (players[to].stopped) {
        /* The platform reports the closed connection, as Steam and EOS do. */
        check(baton_net_unreachable(players[from].session, players[to].net_name, players[to].net_name_len),
              "baton_net_unreachable");
        return;
    }
    baton_result result =
        baton_net_push(players[to].session, players[from].net_name, players[from].net_name_len, data, len);
    if (result != BATON_RESULT_WOULD_BLOCK) { /* a full queue is the platform's loss */
        check(result, "baton_net_push");
    }
}

void net_carry(player *players, int count) {
    held_datagram late[HELD_MAX];
    int late_count = held_count;
    memcpy(late, held, sizeof(held_datagram) * (size_t)held_count);
    held_count = 0;
    for (int i = 0; i < late_count; i++) {
        deliver(players, late[i].from, late[i].to, late[i].data, late[i].len);
    }
    for (int from = 0; from < count; from++) {
        if (players[from].stopped) {
            continue;
        }
        for (;;) {
            uint8_t peer[BATON_NET_ADDR_BYTES_MAX], data[DATAGRAM_MAX];
            size_t peer_len = 0, len = 0;
            check(baton_net_take(players[from].session, peer, sizeof peer, &peer_len, data, sizeof data, &len),
                  "baton_net_take");
            if (len == 0) {
                break;
            }
            int to = player_named(players, count, peer, peer_len);
            carried++;
            if (to < 0 || carried % 50 == 0) {
                continue; /* unknown id, or lost */
            }
            if (carried % 7 == 0 && held_count < HELD_MAX) {
                held[held_count].from = from;
                held[held_count].to = to;
                memcpy(held[held_count].data, data, len);
                held[held_count].len = len;
                held_count++;
                continue;
            }
            deliver(players, from, to, data, len);
        }
    }
}

int match_pump(player *players, int count, int (*done)(player *, int), uint32_t timeout_ms) {
    struct timespec start, now, nap = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        for (int i = 0; i < count; i++) {
            if (player_pump(&players[i]) != 0) {
                fprintf(stderr, "player %d: %s\n", i, players[i].failure);
                return -1;
            }
        }
        if (players[0].net_name_len > 0) {
            net_carry(players, count);
        }
        if (done(players, count)) {
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed > (long)timeout_ms) {
            return 0;
        }
        nanosleep(&nap, NULL); /* a frame */
    }
}
