/*
 * emulated_device.c - a pretend microcontroller on a serial device, for integration tests and the
 * no-hardware demo. It speaks outpost-link v1 through the same library the sketches use: HELLO at
 * start, DATA every --interval ms, PING every --ping ms, and ACK/NAK for commands.
 *
 *   socat -d -d pty,raw,echo=0 pty,raw,echo=0     # prints two /dev/pts/N paths
 *   build/emulated_device /dev/pts/N              # give Outpost the other one
 *
 * Fields: 1 temperature (float32, °C), 2 humidity (float32, %), 3 counter (uint32),
 * 4 led (bool). Commands: `led` (one byte, 0 or 1), `interval` (uint32 BE, ms), `$hello`;
 * anything else gets NAK 0x01. Everything it does is logged to stderr, one line per event.
 */
#define _POSIX_C_SOURCE 200809L

#include "../src/outpost_link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define FIELD_TEMPERATURE 1
#define FIELD_HUMIDITY 2
#define FIELD_COUNTER 3
#define FIELD_LED 4

static const ol_field_def FIELDS[] = {
    {FIELD_TEMPERATURE, OL_FLOAT32, "temperature", "\xC2\xB0" "C"},
    {FIELD_HUMIDITY, OL_FLOAT32, "humidity", "%"},
    {FIELD_COUNTER, OL_UINT32, "counter", ""},
    {FIELD_LED, OL_BOOL, "led", ""},
};

typedef struct {
    const char *path;
    const char *device_id;
    long interval_ms;
    long ping_ms;
    long duration_ms; /* 0: until a signal */
    long count;       /* 0: unlimited DATA frames */
    long baud;
    unsigned long seed;
    int hex;
    int quiet;
} options;

typedef struct {
    int fd;
    uint8_t seq; /* this sender's counter: one per frame sent, wrapping at 256 */
    uint8_t out[OL_WIRE_MAX];
    /* The answer to the last CMD, kept so a retried CMD (same seq, same bytes) gets the same
     * answer again instead of running twice: the gateway retries when our ACK was lost. */
    int have_last;
    uint8_t last_cmd_seq;
    uint16_t last_cmd_crc;
    uint8_t last_answer[OL_WIRE_MAX];
    int last_answer_len;
    /* simulated device */
    float temperature, humidity;
    uint32_t counter;
    int led;
    uint32_t rng;
    /* statistics */
    unsigned long sent, commands, rx_errors;
} device;

static volatile sig_atomic_t g_stop;
static options *g_opt;

/** Stops the main loop at the next wake-up; the only thing a signal handler may safely do. */
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/** Prints one log line to stderr, prefixed with the program name, unless --quiet. */
static void note(const char *fmt, ...)
{
    va_list ap;
    if (g_opt && g_opt->quiet) return;
    fputs("emulated_device: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/** Prints bytes as hex after a label, for --hex. */
static void log_hex(const char *label, const uint8_t *p, size_t n)
{
    size_t i;
    if (!g_opt->hex || g_opt->quiet) return;
    fprintf(stderr, "emulated_device:   %s ", label);
    for (i = 0; i < n; i++) fprintf(stderr, "%02x", p[i]);
    fputc('\n', stderr);
}

/** Milliseconds on the monotonic clock: wall-clock jumps must not bunch up or stall frames. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/** xorshift32, for readings that wander plausibly and repeat for a given --seed. */
static uint32_t next_rand(device *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 17;
    d->rng ^= d->rng << 5;
    return d->rng;
}

/** A step in [-amount, +amount] for the random walk of a reading. */
static float wander(device *d, float amount)
{
    return ((float)(next_rand(d) % 2001u) / 1000.0f - 1.0f) * amount;
}

/** Writes a whole frame, riding out short writes and EINTR; exits if the line is gone. */
static void send_bytes(device *d, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(d->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = {d->fd, POLLOUT, 0};
            poll(&pfd, 1, 100);
            continue;
        }
        if (w <= 0) {
            note("write failed: %s", w < 0 ? strerror(errno) : "closed");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/** Sends a frame built into d->out (length n from a builder), and counts it. */
static void send_frame(device *d, int n, const char *what)
{
    if (n < 0) {
        /* Only a programming error gets here: every frame this program builds fits. */
        note("cannot build %s: %s", what, ol_status_name(n));
        exit(1);
    }
    send_bytes(d, d->out, (size_t)n);
    log_hex("tx", d->out, (size_t)n);
    d->sent++;
    d->seq++;
}

/** Announces the device and its fields. */
static void send_hello(device *d)
{
    uint8_t seq = d->seq;
    int n = ol_build_hello(d->out, sizeof d->out, seq, g_opt->device_id, "emulator-1.0.0", FIELDS,
                           (uint8_t)(sizeof FIELDS / sizeof FIELDS[0]));
    send_frame(d, n, "HELLO");
    note("tx HELLO seq=%u id=%s fields=temperature,humidity,counter,led (%d bytes)", seq,
          g_opt->device_id, n);
}

/** Takes a new reading and sends it. */
static void send_data(device *d)
{
    ol_data_builder b;
    uint8_t seq = d->seq;
    int n;
    d->temperature += wander(d, 0.2f);
    if (d->temperature < 15.0f || d->temperature > 30.0f) d->temperature = 21.0f;
    d->humidity += wander(d, 0.5f);
    if (d->humidity < 20.0f || d->humidity > 90.0f) d->humidity = 48.0f;
    d->counter++;
    ol_data_begin(&b, d->out, sizeof d->out, seq);
    ol_data_float32(&b, FIELD_TEMPERATURE, d->temperature);
    ol_data_float32(&b, FIELD_HUMIDITY, d->humidity);
    ol_data_uint32(&b, FIELD_COUNTER, d->counter);
    ol_data_bool(&b, FIELD_LED, d->led != 0);
    n = ol_data_finish(&b);
    send_frame(d, n, "DATA");
    note("tx DATA seq=%u temperature=%.2f humidity=%.2f counter=%lu led=%s (%d bytes)", seq,
          (double)d->temperature, (double)d->humidity, (unsigned long)d->counter,
          d->led ? "true" : "false", n);
}

/** Heartbeat, so the gateway can tell a quiet device from a dead one. */
static void send_ping(device *d)
{
    uint8_t seq = d->seq;
    send_frame(d, ol_build_ping(d->out, sizeof d->out, seq), "PING");
    note("tx PING seq=%u", seq);
}

/** Answers a CMD: ACK what we can do, NAK the rest with the reason. */
static void handle_cmd(device *d, const ol_frame *f, uint16_t crc)
{
    const uint8_t *a = f->u.cmd.args;
    uint8_t n = f->u.cmd.args_len;
    uint8_t seq = d->seq;
    int len;
    int followed_by_hello = 0;
    char reason[96];

    d->commands++;
    if (d->have_last && f->seq == d->last_cmd_seq && crc == d->last_cmd_crc) {
        send_bytes(d, d->last_answer, (size_t)d->last_answer_len);
        log_hex("tx", d->last_answer, (size_t)d->last_answer_len);
        note("rx CMD seq=%u %.*s again: a retry, answer repeated, not run twice", f->seq,
              f->u.cmd.name.len, f->u.cmd.name.ptr);
        return;
    }

    reason[0] = '\0';
    if (ol_cmd_is(f, "led")) {
        if (n == 1 && a[0] <= 1) {
            d->led = a[0];
            len = ol_build_ack(d->out, sizeof d->out, seq, f->seq);
            note("rx CMD seq=%u led %u -> LED %s, ACK seq=%u", f->seq, a[0], d->led ? "on" : "off",
                  seq);
        } else {
            len = ol_build_nak(d->out, sizeof d->out, seq, f->seq, OL_NAK_BAD_ARGS,
                               "led takes one byte: 0 or 1");
            note("rx CMD seq=%u led with %u argument bytes -> NAK bad_args seq=%u", f->seq, n, seq);
        }
    } else if (ol_cmd_is(f, "interval")) {
        unsigned long ms = n == 4 ? ((unsigned long)a[0] << 24 | (unsigned long)a[1] << 16 |
                                     (unsigned long)a[2] << 8 | a[3])
                                  : 0;
        if (ms >= 100 && ms <= 3600000ul) {
            g_opt->interval_ms = (long)ms;
            len = ol_build_ack(d->out, sizeof d->out, seq, f->seq);
            note("rx CMD seq=%u interval %lu ms -> ACK seq=%u", f->seq, ms, seq);
        } else {
            len = ol_build_nak(d->out, sizeof d->out, seq, f->seq, OL_NAK_BAD_ARGS,
                               "interval takes a uint32 of 100..3600000 ms");
            note("rx CMD seq=%u interval with bad argument -> NAK bad_args seq=%u", f->seq, seq);
        }
    } else if (ol_cmd_is(f, "$hello")) {
        len = ol_build_ack(d->out, sizeof d->out, seq, f->seq);
        followed_by_hello = 1;
        note("rx CMD seq=%u $hello -> ACK seq=%u, then HELLO", f->seq, seq);
    } else {
        snprintf(reason, sizeof reason, "unknown command: %.*s", f->u.cmd.name.len,
                 f->u.cmd.name.ptr);
        len = ol_build_nak(d->out, sizeof d->out, seq, f->seq, OL_NAK_UNKNOWN_COMMAND, reason);
        if (len == OL_ERR_ARG) { /* the name cut at 80 bytes may end mid-character */
            len = ol_build_nak(d->out, sizeof d->out, seq, f->seq, OL_NAK_UNKNOWN_COMMAND, NULL);
        }
        note("rx CMD seq=%u %.*s -> NAK unknown_command seq=%u", f->seq, f->u.cmd.name.len,
              f->u.cmd.name.ptr, seq);
    }
    if (len > 0) {
        memcpy(d->last_answer, d->out, (size_t)len);
        d->last_answer_len = len;
        d->last_cmd_seq = f->seq;
        d->last_cmd_crc = crc;
        d->have_last = 1;
    }
    send_frame(d, len, "answer");
    if (followed_by_hello) send_hello(d);
}

/** Feeds received bytes to the receiver and acts on complete frames. */
static void on_bytes(device *d, ol_rx *rx, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int r = ol_rx_push(rx, p[i]);
        if (r == OL_RX_NONE) continue;
        if (r < 0) {
            d->rx_errors++;
            note("rx error %s (%lu so far)", ol_status_name(r), d->rx_errors);
            continue;
        }
        log_hex("rx", rx->buf, rx->len);
        if (rx->frame.type == OL_TYPE_CMD) {
            handle_cmd(d, &rx->frame, (uint16_t)(rx->buf[rx->len - 2] << 8 | rx->buf[rx->len - 1]));
        } else {
            /* A device only takes CMD; anything else is an echo or a confused peer. */
            note("rx frame type %u seq=%u ignored (devices only act on CMD)", rx->frame.type,
                  rx->frame.seq);
        }
    }
}

/** Maps a --baud number to its termios constant; 0 for unsupported rates. */
static speed_t baud_constant(long baud)
{
    switch (baud) {
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 115200: return B115200;
    case 230400: return B230400;
    default: return 0;
    }
}

/** Opens the serial device raw 8N1: no echo, no line editing, no CR/LF or flow-control
 *  translation, since any of those would corrupt binary frames. */
static int open_serial(const char *path, long baud)
{
    struct termios t;
    int fd = open(path, O_RDWR | O_NOCTTY);
    if (fd < 0) {
        fprintf(stderr, "emulated_device: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (tcgetattr(fd, &t) != 0) {
        fprintf(stderr, "emulated_device: %s is not a terminal: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    t.c_iflag &= (tcflag_t) ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON |
                              IXOFF | IXANY | INPCK);
    t.c_oflag &= (tcflag_t)~OPOST;
    t.c_lflag &= (tcflag_t) ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= (tcflag_t) ~(CSIZE | PARENB | CSTOPB);
    t.c_cflag |= CS8 | CREAD | CLOCAL;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    cfsetispeed(&t, baud_constant(baud));
    cfsetospeed(&t, baud_constant(baud));
    if (tcsetattr(fd, TCSANOW, &t) != 0) {
        fprintf(stderr, "emulated_device: cannot set %s raw: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/** Prints usage to `f`. */
static void usage(FILE *f)
{
    fputs("usage: emulated_device [options] SERIAL_DEVICE\n"
          "  --interval MS    DATA every MS milliseconds (default 1000)\n"
          "  --ping MS        PING every MS milliseconds, 0 for never (default 5000)\n"
          "  --device-id ID   device id sent in HELLO (default emulated-1)\n"
          "  --count N        exit after N DATA frames (default: no limit)\n"
          "  --duration MS    exit after MS milliseconds (default: until SIGINT/SIGTERM)\n"
          "  --baud N         9600..230400 (default 115200; a pty ignores it)\n"
          "  --seed N         seed for the simulated readings (default 1)\n"
          "  --hex            also log every frame sent and received as hex\n"
          "  --quiet          log nothing\n",
          f);
}

/** Parses a non-negative decimal option value, or exits with usage. */
static long number_arg(const char *name, const char *s)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s ? s : "", &end, 10);
    if (!s || *s == '\0' || *end != '\0' || errno || v < 0) {
        fprintf(stderr, "emulated_device: %s needs a non-negative number, got '%s'\n", name,
                s ? s : "");
        usage(stderr);
        exit(2);
    }
    return v;
}

/** Reads the command line: long options as `--name value` or `--name=value`. */
static void parse_args(int argc, char **argv, options *o)
{
    int i;
    memset(o, 0, sizeof *o);
    o->device_id = "emulated-1";
    o->interval_ms = 1000;
    o->ping_ms = 5000;
    o->baud = 115200;
    o->seed = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[32];
        const char *eq;
        if (strncmp(a, "--", 2) != 0) {
            if (o->path) {
                fprintf(stderr, "emulated_device: one serial device only\n");
                exit(2);
            }
            o->path = a;
            continue;
        }
        eq = strchr(a, '=');
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        if (strcmp(name, "--hex") == 0) { o->hex = 1; continue; }
        if (strcmp(name, "--quiet") == 0) { o->quiet = 1; continue; }
        if (strcmp(name, "--help") == 0) { usage(stdout); exit(0); }
        val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (strcmp(name, "--interval") == 0) o->interval_ms = number_arg(name, val);
        else if (strcmp(name, "--ping") == 0) o->ping_ms = number_arg(name, val);
        else if (strcmp(name, "--count") == 0) o->count = number_arg(name, val);
        else if (strcmp(name, "--duration") == 0) o->duration_ms = number_arg(name, val);
        else if (strcmp(name, "--baud") == 0) o->baud = number_arg(name, val);
        else if (strcmp(name, "--seed") == 0) o->seed = (unsigned long)number_arg(name, val);
        else if (strcmp(name, "--device-id") == 0 && val) o->device_id = val;
        else {
            fprintf(stderr, "emulated_device: unknown option %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (!o->path) {
        usage(stderr);
        exit(2);
    }
    if (o->interval_ms < 10) {
        fprintf(stderr, "emulated_device: --interval must be at least 10 ms\n");
        exit(2);
    }
    if (baud_constant(o->baud) == 0) {
        fprintf(stderr, "emulated_device: unsupported --baud %ld\n", o->baud);
        exit(2);
    }
    if (o->device_id[0] == '\0' || strlen(o->device_id) > 64) {
        fprintf(stderr, "emulated_device: --device-id must be 1..64 bytes\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    static options opt;
    static device dev;
    uint8_t rxbuf[OL_FRAME_MAX];
    ol_rx rx;
    struct sigaction sa;
    long long start, next_data, next_ping, deadline;
    const uint8_t resync = 0x00;
    int status = 0;

    parse_args(argc, argv, &opt);
    g_opt = &opt;

    /* No SA_RESTART: poll must return on a signal so the loop can see g_stop. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    dev.fd = open_serial(opt.path, opt.baud);
    if (dev.fd < 0) return 1;
    dev.temperature = 21.0f;
    dev.humidity = 48.0f;
    dev.rng = (uint32_t)(opt.seed * 2654435761ul) | 1u;
    ol_rx_init(&rx, rxbuf, sizeof rxbuf);
    note("opened %s (raw 8N1, %ld baud); DATA every %ld ms, PING every %ld ms", opt.path,
          opt.baud, opt.interval_ms, opt.ping_ms);

    /* A lone delimiter first: whatever half-frame the gateway holds from before we (re)started
     * ends here, so our HELLO is not glued to it. */
    send_bytes(&dev, &resync, 1);
    send_hello(&dev);

    start = now_ms();
    next_data = start + opt.interval_ms;
    next_ping = opt.ping_ms > 0 ? start + opt.ping_ms : -1;
    deadline = opt.duration_ms > 0 ? start + opt.duration_ms : -1;

    while (!g_stop) {
        long long now = now_ms(), wake = next_data;
        struct pollfd pfd;
        int pr;
        if (deadline >= 0 && now >= deadline) break;
        if (now >= next_data) {
            send_data(&dev);
            if (opt.count > 0 && (long)dev.counter >= opt.count) break;
            /* Schedule from the plan, not from now, so the rate does not drift; after a long
             * stall skip the missed slots instead of bursting. */
            next_data += opt.interval_ms;
            if (next_data <= now) next_data = now + opt.interval_ms;
            continue;
        }
        if (next_ping >= 0 && now >= next_ping) {
            send_ping(&dev);
            next_ping += opt.ping_ms;
            if (next_ping <= now) next_ping = now + opt.ping_ms;
            continue;
        }
        if (next_ping >= 0 && next_ping < wake) wake = next_ping;
        if (deadline >= 0 && deadline < wake) wake = deadline;
        pfd.fd = dev.fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        pr = poll(&pfd, 1, (int)(wake - now));
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) {
            note("poll failed: %s", strerror(errno));
            status = 1;
            break;
        }
        if (pr > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
            uint8_t buf[256];
            ssize_t n = read(dev.fd, buf, sizeof buf);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n <= 0) {
                /* A pty whose other side went away reads as EOF or EIO: nothing left to talk to. */
                note("serial device closed (%s)", n < 0 ? strerror(errno) : "end of file");
                status = 1;
                break;
            }
            on_bytes(&dev, &rx, buf, (size_t)n);
        }
    }

    note("stopping: %lu frames sent, %lu commands, %lu receive errors", dev.sent, dev.commands,
          dev.rx_errors);
    close(dev.fd);
    return status;
}
