/*
 * test_emulator.c - runs host/emulated_device on a pseudo-terminal and plays gateway on the other
 * end, through the library: HELLO and DATA arrive in order, commands get ACK/NAK, a retried CMD
 * gets the identical answer, `$hello` gets a new HELLO, noise does not derail it, and SIGTERM
 * ends it with status 0. Integration tests on the TypeScript side lean on this behaviour.
 *
 * Usage: test_emulator path/to/emulated_device
 */
#define _XOPEN_SOURCE 600

#include "../src/outpost_link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int g_failed;
static int g_master = -1;
static pid_t g_child = -1;
static ol_rx g_rx;
static uint8_t g_rxbuf[OL_FRAME_MAX];
static int g_have_seq;
static uint8_t g_next_seq; /* the seq the device's next new frame must carry */

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "FAIL test_emulator.c:%d: ", __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            g_failed++;                                                                         \
        }                                                                                       \
    } while (0)

/** Stops the emulator if a check bails out early, so no process outlives the test. */
static void cleanup(void)
{
    if (g_child > 0) {
        kill(g_child, SIGKILL);
        waitpid(g_child, NULL, 0);
        g_child = -1;
    }
}

/** Gives up on the run: a missing frame would make every later check fail too. */
static void fatal(const char *what)
{
    fprintf(stderr, "FAIL test_emulator: %s\n", what);
    cleanup();
    printf("emulator: 0 passed, 1 failed\n");
    exit(1);
}

/** Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/** Waits up to 3 s for the next complete frame; receive errors fail the test (the emulator
 *  must only send valid frames). Also checks the device's seq advances by one per new frame. The
 *  decoded bytes are copied to `raw` (if given) because rx.buf is reused. */
static const ol_frame *next_frame(uint8_t *raw, size_t *raw_len, int allow_repeat)
{
    long long deadline = now_ms() + 3000;
    for (;;) {
        uint8_t b;
        struct pollfd p = {g_master, POLLIN, 0};
        long long left = deadline - now_ms();
        int r;
        if (left <= 0) fatal("no frame from the emulator within 3 s");
        if (poll(&p, 1, (int)left) <= 0) continue;
        if (read(g_master, &b, 1) != 1) fatal("emulator closed the line");
        r = ol_rx_push(&g_rx, b);
        if (r == OL_RX_NONE) continue;
        CHECK(r == OL_RX_FRAME, "emulator sent a bad frame: %s", ol_status_name(r));
        if (r != OL_RX_FRAME) continue;
        if (raw) {
            memcpy(raw, g_rx.buf, g_rx.len);
            *raw_len = g_rx.len;
        }
        /* A repeated answer is the old frame, old seq included; every other frame is new. */
        if (!(allow_repeat && g_rx.frame.type == OL_TYPE_ACK)) {
            CHECK(!g_have_seq || g_rx.frame.seq == g_next_seq, "device seq %u, expected %u",
                  g_rx.frame.seq, g_next_seq);
            g_have_seq = 1;
            g_next_seq = (uint8_t)(g_rx.frame.seq + 1);
        }
        return &g_rx.frame;
    }
}

/** Waits for a frame of `type`, skipping the DATA and PING frames that keep coming meanwhile. */
static const ol_frame *wait_for(uint8_t type, uint8_t *raw, size_t *raw_len, int allow_repeat)
{
    int i;
    for (i = 0; i < 100; i++) {
        const ol_frame *f = next_frame(raw, raw_len, allow_repeat);
        if (f->type == type) return f;
    }
    fatal("expected frame type never came");
    return NULL;
}

/** Writes bytes to the emulator's line. */
static void send_raw(const uint8_t *p, size_t n)
{
    if (write(g_master, p, n) != (ssize_t)n) fatal("write to the pty failed");
}

/** Sends a CMD as the gateway would. */
static void send_cmd(uint8_t seq, const char *name, const uint8_t *args, size_t n)
{
    uint8_t out[OL_WIRE_MAX];
    int len = ol_build_cmd(out, sizeof out, seq, name, args, n);
    if (len < 0) fatal("cannot build CMD");
    send_raw(out, (size_t)len);
}

int main(int argc, char **argv)
{
    const char *slave;
    const ol_frame *f;
    uint8_t raw1[OL_FRAME_MAX], raw2[OL_FRAME_MAX];
    size_t len1 = 0, len2 = 0;
    int status, i, saw_led_on = 0;
    ol_iter it;
    ol_field_info fi;
    ol_value v;
    static const char *const names[] = {"temperature", "humidity", "counter", "led"};
    static const uint8_t types[] = {OL_FLOAT32, OL_FLOAT32, OL_UINT32, OL_BOOL};

    if (argc < 2) {
        fprintf(stderr, "usage: test_emulator path/to/emulated_device\n");
        return 2;
    }
    g_master = posix_openpt(O_RDWR | O_NOCTTY);
    if (g_master < 0 || grantpt(g_master) != 0 || unlockpt(g_master) != 0 ||
        !(slave = ptsname(g_master))) {
        perror("test_emulator: pseudo-terminal");
        return 2;
    }
    ol_rx_init(&g_rx, g_rxbuf, sizeof g_rxbuf);

    g_child = fork();
    if (g_child < 0) {
        perror("fork");
        return 2;
    }
    if (g_child == 0) {
        close(g_master);
        execl(argv[1], argv[1], "--interval", "100", "--ping", "300", "--quiet", slave,
              (char *)NULL);
        perror("exec emulated_device");
        _exit(127);
    }

    /* HELLO first, with the documented fields. */
    f = next_frame(NULL, NULL, 0);
    CHECK(f->type == OL_TYPE_HELLO, "first frame is type %u, not HELLO", f->type);
    if (f->type != OL_TYPE_HELLO) fatal("no HELLO");
    CHECK(f->u.hello.device_id.len == 10 && memcmp(f->u.hello.device_id.ptr, "emulated-1", 10) == 0,
          "device id");
    CHECK(f->u.hello.field_count == 4, "field count %u", f->u.hello.field_count);
    it = f->u.hello.fields;
    for (i = 0; i < 4 && ol_next_field(&it, &fi); i++) {
        CHECK(fi.id == i + 1 && fi.type == types[i] && fi.name.len == strlen(names[i]) &&
                  memcmp(fi.name.ptr, names[i], fi.name.len) == 0,
              "field %d", i + 1);
    }

    /* Then DATA with the four values, counter starting at 1. */
    f = wait_for(OL_TYPE_DATA, NULL, NULL, 0);
    CHECK(f->u.data.value_count == 4, "DATA has %u values", f->u.data.value_count);
    it = f->u.data.values;
    for (i = 0; i < 4 && ol_next_value(&it, &v); i++) {
        CHECK(v.id == i + 1 && v.type == types[i], "value %d", i + 1);
        if (v.id == 3) CHECK(v.as.u32 == 1, "first counter is %lu", (unsigned long)v.as.u32);
    }

    /* led 1 -> ACK; the same CMD again -> the very same ACK bytes, not a second action. */
    send_cmd(10, "led", (const uint8_t *)"\x01", 1);
    f = wait_for(OL_TYPE_ACK, raw1, &len1, 0);
    CHECK(f->u.ack.cmd_seq == 10, "ACK for %u", f->u.ack.cmd_seq);
    send_cmd(10, "led", (const uint8_t *)"\x01", 1);
    f = wait_for(OL_TYPE_ACK, raw2, &len2, 1);
    CHECK(len1 == len2 && memcmp(raw1, raw2, len1) == 0, "a retried CMD got a different answer");

    /* Unknown command and bad arguments are NAKed with their codes. */
    send_cmd(11, "fan", NULL, 0);
    f = wait_for(OL_TYPE_NAK, NULL, NULL, 0);
    CHECK(f->u.nak.cmd_seq == 11 && f->u.nak.code == OL_NAK_UNKNOWN_COMMAND, "NAK for fan");
    send_cmd(12, "led", (const uint8_t *)"\x07", 1);
    f = wait_for(OL_TYPE_NAK, NULL, NULL, 0);
    CHECK(f->u.nak.cmd_seq == 12 && f->u.nak.code == OL_NAK_BAD_ARGS, "NAK for led 7");

    /* Noise on the line costs nothing but itself. */
    send_raw((const uint8_t *)"\x12\x34\x00\xff\x00", 5);

    /* $hello -> ACK, then HELLO. */
    send_cmd(13, "$hello", NULL, 0);
    f = wait_for(OL_TYPE_ACK, NULL, NULL, 0);
    CHECK(f->u.ack.cmd_seq == 13, "ACK for $hello");
    f = next_frame(NULL, NULL, 0);
    CHECK(f->type == OL_TYPE_HELLO, "HELLO right after the $hello ACK, got type %u", f->type);

    /* The LED state shows up in DATA, and PINGs keep coming. */
    for (i = 0; i < 10 && !saw_led_on; i++) {
        f = wait_for(OL_TYPE_DATA, NULL, NULL, 0);
        it = f->u.data.values;
        while (ol_next_value(&it, &v)) {
            if (v.id == 4 && v.type == OL_BOOL && v.as.b) saw_led_on = 1;
        }
    }
    CHECK(saw_led_on, "DATA never showed led=true");
    wait_for(OL_TYPE_PING, NULL, NULL, 0);

    /* SIGTERM ends it cleanly. */
    kill(g_child, SIGTERM);
    if (waitpid(g_child, &status, 0) != g_child) fatal("waitpid");
    g_child = -1;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d after SIGTERM", status);

    close(g_master);
    printf("emulator: %d passed, %d failed\n", g_failed ? 0 : 1, g_failed ? 1 : 0);
    return g_failed ? 1 : 0;
}
