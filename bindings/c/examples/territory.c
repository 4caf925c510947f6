/* Territory in C: three bot players claim cells of a board in one process; the host
 * leaves gracefully halfway (handing over), and the others play on to a full board.
 * Links libbaton statically or dynamically (bindings/c/run-tests.sh builds both). */
#include "territory.h"

#include <stdio.h>

#define PLAYERS 3
static player players[PLAYERS];

static int all_started(player *ps, int count) {
    for (int i = 0; i < count; i++) {
        baton_session_status status;
        check(baton_status(ps[i].session, &status), "baton_status");
        if (!ps[i].started || !status.voter || ps[i].state.tick < 5) {
            return 0;
        }
    }
    return 1;
}

static int left(player *ps, int count) {
    (void)count;
    return ps[0].stopped;
}

static int board_full(player *ps, int count) {
    for (int i = 1; i < count; i++) {
        for (int cell = 0; cell < BOARD_CELLS; cell++) {
            if (ps[i].state.owner[cell] == 0) {
                return 0;
            }
        }
    }
    return ps[1].state.tick == ps[2].state.tick;
}

int main(void) {
    player_start(&players[0], 1, NULL, 0, NULL);
    while (!players[0].started) {
        match_pump(players, 1, all_started, 10);
    }
    char invite[256];
    size_t len = 0;
    check(baton_invite(players[0].session, (uint8_t *)invite, sizeof invite, &len), "baton_invite");
    printf("host %016llx, invite %.*s\n", (unsigned long long)players[0].id, (int)len, invite);
    for (int i = 1; i < PLAYERS; i++) {
        player_start(&players[i], 1 + i, invite, len, NULL);
    }
    if (match_pump(players, PLAYERS, all_started, 30000) != 1) {
        fprintf(stderr, "the players did not all start\n");
        return 1;
    }
    printf("three players at tick %llu; the host leaves\n", (unsigned long long)players[0].state.tick);
    check(baton_leave(players[0].session), "baton_leave");
    if (match_pump(players, PLAYERS, left, 15000) != 1 || match_pump(players, PLAYERS, board_full, 60000) != 1) {
        fprintf(stderr, "the match did not finish\n");
        return 1;
    }
    for (int i = 1; i < PLAYERS; i++) {
        int owned = 0;
        for (int cell = 0; cell < BOARD_CELLS; cell++) {
            owned += players[i].state.owner[cell] == players[i].id;
        }
        printf("player %016llx: %s, %d cells, board hash %016llx at tick %llu\n",
               (unsigned long long)players[i].id, players[i].hosting ? "host" : "guest", owned,
               (unsigned long long)board_hash(&players[i].state), (unsigned long long)players[i].state.tick);
    }
    int equal = board_hash(&players[1].state) == board_hash(&players[2].state);
    printf("territory: boards equal=%s\n", equal ? "true" : "false");
    for (int i = 0; i < PLAYERS; i++) {
        check(baton_session_free(players[i].session), "baton_session_free");
    }
    return equal ? 0 : 1;
}
