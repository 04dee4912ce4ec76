/*
 * actuator.ino - an LED an Outpost gateway can switch, over outpost-link v1.
 *
 * Wiring: the board's LED (LED_BUILTIN); the UART to the gateway at 115200 8N1.
 * Commands:
 *   led  one argument byte, 0 (off) or 1 (on)  -> ACK, then DATA with the new state
 *   $hello                                     -> ACK, then HELLO
 *   anything else                              -> NAK 0x01 unknown command
 * The LED state is also reported in DATA every 10 s, and a PING goes out every 5 s.
 *
 * The gateway retries a CMD with the same seq when it misses our answer. This sketch remembers
 * the last CMD (seq and CRC) and its answer, and repeats the answer instead of acting twice.
 */
#include <outpost_link.h>
#include <string.h>

static const char DEVICE_ID[] = "desk-led";
static const char FIRMWARE[] = "actuator-example-1.0.0";
static const uint8_t LED_PIN = LED_BUILTIN;
static const unsigned long DATA_EVERY_MS = 10000;
static const unsigned long PING_EVERY_MS = 5000;

enum { FIELD_LED = 1 };

static const ol_field_def FIELDS[] = {
    {FIELD_LED, OL_BOOL, "led", ""},
};

static uint8_t txBuf[96]; // the longest frame this sketch sends is its HELLO (about 50 bytes)
static uint8_t rxBuf[64];
static ol_rx rx;
static uint8_t seq;
static bool ledOn;
static unsigned long lastData, lastPing;

// The last command answered, to recognise a retry of it.
static bool haveLast;
static uint8_t lastCmdSeq;
static uint16_t lastCmdCrc;
static uint8_t lastAnswer[48];
static int lastAnswerLen;

// Sends a frame a builder just wrote into txBuf.
static void sendFrame(int len) {
  if (len <= 0) return;
  Serial.write(txBuf, (size_t)len);
  seq++;
}

// Announces the device and its one field.
static void sendHello() {
  sendFrame(ol_build_hello(txBuf, sizeof txBuf, seq, DEVICE_ID, FIRMWARE, FIELDS, 1));
}

// Reports the LED state, so the gateway's retained state topic follows the hardware.
static void sendState() {
  ol_data_builder b;
  ol_data_begin(&b, txBuf, sizeof txBuf, seq);
  ol_data_bool(&b, FIELD_LED, ledOn);
  sendFrame(ol_data_finish(&b));
}

// Runs one command and sends its answer (keeping a copy for retries).
static void handleCommand(const ol_frame *f, uint16_t crc) {
  if (haveLast && f->seq == lastCmdSeq && crc == lastCmdCrc) {
    Serial.write(lastAnswer, (size_t)lastAnswerLen); // the same bytes, same seq: a duplicate
    return;
  }
  bool stateChanged = false, helloAfter = false;
  int len;
  if (ol_cmd_is(f, "led")) {
    if (f->u.cmd.args_len == 1 && f->u.cmd.args[0] <= 1) {
      ledOn = f->u.cmd.args[0] == 1;
      digitalWrite(LED_PIN, ledOn ? HIGH : LOW);
      len = ol_build_ack(txBuf, sizeof txBuf, seq, f->seq);
      stateChanged = true;
    } else {
      len = ol_build_nak(txBuf, sizeof txBuf, seq, f->seq, OL_NAK_BAD_ARGS, "led takes 0 or 1");
    }
  } else if (ol_cmd_is(f, "$hello")) {
    len = ol_build_ack(txBuf, sizeof txBuf, seq, f->seq);
    helloAfter = true;
  } else {
    len = ol_build_nak(txBuf, sizeof txBuf, seq, f->seq, OL_NAK_UNKNOWN_COMMAND, NULL);
  }
  if (len > 0 && (size_t)len <= sizeof lastAnswer) {
    memcpy(lastAnswer, txBuf, (size_t)len);
    lastAnswerLen = len;
    lastCmdSeq = f->seq;
    lastCmdCrc = crc;
    haveLast = true;
  }
  sendFrame(len);
  if (stateChanged) sendState();
  if (helloAfter) sendHello();
}

void setup() {
  pinMode(LED_PIN, OUTPUT);
  digitalWrite(LED_PIN, LOW);
  Serial.begin(115200);
  ol_rx_init(&rx, rxBuf, sizeof rxBuf);
  Serial.write((uint8_t)0); // end any half-frame the gateway heard while we reset
  sendHello();
  sendState();
  lastData = lastPing = millis();
}

void loop() {
  unsigned long now = millis();
  if (now - lastData >= DATA_EVERY_MS) {
    lastData = now;
    sendState();
  }
  if (now - lastPing >= PING_EVERY_MS) {
    lastPing = now;
    sendFrame(ol_build_ping(txBuf, sizeof txBuf, seq));
  }
  while (Serial.available() > 0) {
    if (ol_rx_push(&rx, (uint8_t)Serial.read()) != OL_RX_FRAME) continue;
    if (rx.frame.type != OL_TYPE_CMD) continue; // a device acts on CMD only
    // The CMD's CRC (its last two bytes) tells a retry from a new command with a reused seq.
    uint16_t crc = (uint16_t)((rx.buf[rx.len - 2] << 8) | rx.buf[rx.len - 1]);
    handleCommand(&rx.frame, crc);
  }
}
