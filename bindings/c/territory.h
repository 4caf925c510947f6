/* Territory, a small turn-based game over Baton: players claim cells of a board, the
 * host decides each turn who got what, and every player applies the host's decision.
 * Shared by the example (examples/territory.c) and the C test suite. */
#ifndef TERRITORY_H
#define TERRITORY_H

#include "baton.h"
#include <stdint.h>

#define BOARD_CELLS 64
#define TICKS_MAX 4096
#define PLAYERS_MAX 8

typedef struct board {
    uint64_t tick;
    uint64_t owner[BOARD_CELLS]; /* a player's id, 0 when free */
} board;

/* One player of a match: its session, its replica of the board, and what it saw. */
typedef struct player {
    baton_session session;
    uint64_t id;
    int started;
    int stopped;      /* FATAL or LEFT seen, or stopped by the match */
    int hosting;
    int waiting;      /* an input of ours is not yet committed */
    uint32_t rng;     /* picks the cells this player claims */
    board state;
    uint64_t hash[TICKS_MAX + 1]; /* hash[t]: the board after tick t */
    uint64_t ticks_run;           /* RUN_TICK requests answered (as host) */
    uint64_t last_committed;      /* our newest input sequence committed */
    uint64_t inputs_applied;      /* inputs of every player applied here */
    /* (player, sequence) pairs applied here, to check each input applied once */
    uint64_t seen_player[TICKS_MAX];
    uint64_t seen_sequence[TICKS_MAX];
    uint64_t seen;
    char failure[256];
    /* On the application's own network (net_name_len > 0): this player's address there. */
    uint8_t net_name[BATON_NET_ADDR_BYTES_MAX];
    size_t net_name_len;
} player;

/* Exits with a message naming the call, its result and the library's last error. */
void check(baton_result result, const char *call);

/* Fills a config for a turn-based match on loopback. */
void territory_config(baton_config *config);

uint64_t board_hash(const board *state);

/* Starts a player: founds the session when invite is NULL, joins it otherwise. With a
 * net_name, the session runs over the application's own network (net_carry) under that
 * address instead of UDP. */
void player_start(player *p, uint32_t seed, const char *invite, size_t invite_len, const char *net_name);

/* A stand-in for a game platform's network (Steam, EOS): carries each player's outgoing
 * datagrams to the player they name, losing every 50th and holding every 7th back a
 * round so later ones overtake it; a stopped player is reported unreachable. */
void net_carry(player *players, int count);

/* Polls the player's session once and handles every event (answers the host's
 * requests, applies ticks, submits the next claim). Returns 0, or -1 on a game error
 * recorded in p->failure. */
int player_pump(player *p);

/* Pumps every running player until done(players) is true or timeout_ms passes.
 * Returns 1 when done, 0 on timeout, -1 on a game error. */
int match_pump(player *players, int count, int (*done)(player *, int), uint32_t timeout_ms);

#endif
