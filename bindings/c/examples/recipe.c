/* The recipe of baton.h, whole: host a session, let a second player join it, and play
 * three ticks in lockstep. */
#include "baton.h"

#include <stdio.h>
#include <stdlib.h>

static void check(baton_result result, const char *call) {
    if (result != BATON_RESULT_OK) {
        uint8_t message[512];
        size_t len = 0;
        baton_last_error_message(message, sizeof message, &len);
        fprintf(stderr, "%s: %s: %.*s\n", call, baton_result_name(result), (int)len, (char *)message);
        exit(1);
    }
}

/* Handles one session's events; returns the last tick it applied. */
static uint64_t pump(baton_session session, uint64_t applied, int *started) {
    baton_event events[64];
    size_t count = 0;
    check(baton_poll(session, events, 64, &count), "baton_poll");
    for (size_t i = 0; i < count; i++) {
        switch (events[i].kind) {
        case BATON_EVENT_KIND_STARTED:
            *started = 1;
            break;
        case BATON_EVENT_KIND_APPLY_TICK:
            applied = events[i].tick; /* a game applies events[i].inputs here */
            break;
        case BATON_EVENT_KIND_MAKE_SNAPSHOT:
            check(baton_answer_snapshot(session, events[i].tick, NULL, 0), "baton_answer_snapshot");
            break;
        case BATON_EVENT_KIND_FATAL:
            fprintf(stderr, "fatal: %.*s\n", (int)events[i].data_len, (const char *)events[i].data);
            exit(1);
        default:
            break;
        }
    }
    return applied;
}

int main(void) {
    baton_config config;
    check(baton_config_default(&config), "baton_config_default");
    config.lockstep = 1; /* the record is the inputs: no RUN_TICK to answer */
    baton_session host, guest;
    check(baton_host(BATON_ABI_VERSION, &config, &host), "baton_host");
    int host_started = 0, guest_started = 0;
    uint64_t host_tick = 0, guest_tick = 0;
    while (!host_started) {
        host_tick = pump(host, host_tick, &host_started);
        uint32_t ready = 0;
        check(baton_wait(host, 100, &ready), "baton_wait");
    }
    char invite[256];
    size_t len = 0;
    check(baton_invite(host, (uint8_t *)invite, sizeof invite, &len), "baton_invite");
    check(baton_join(BATON_ABI_VERSION, &config, (const uint8_t *)invite, len, &guest), "baton_join");
    while (guest_tick < 3) {
        host_tick = pump(host, host_tick, &host_started);
        guest_tick = pump(guest, guest_tick, &guest_started);
        uint32_t ready = 0;
        check(baton_wait(guest, 10, &ready), "baton_wait");
    }
    printf("recipe: the guest applied tick %llu\n", (unsigned long long)guest_tick);
    check(baton_session_free(guest), "baton_session_free");
    check(baton_session_free(host), "baton_session_free");
    return 0;
}
