/*
 * sensor.ino - reports readings to an Outpost gateway over outpost-link v1.
 *
 * Wiring: a TMP36 temperature sensor on A0; the board's UART (pins 0/1, or USB) to the gateway at
 * 115200 8N1. What the gateway gets:
 *   HELLO at boot: device id, firmware version and the three fields below
 *   DATA every 2 s: temperature (float32, degrees C), light (uint32, raw ADC on A1), uptime (s)
 *   PING every 5 s, so a quiet link still shows the device is alive
 * Commands: `$hello` (send HELLO again, for a gateway that restarted); everything else is NAKed.
 *
 * RAM: 256 bytes to build frames in, 32 to receive commands in: commands are short, and a longer
 * frame is simply counted as too long and skipped.
 */
#include <outpost_link.h>

static const char DEVICE_ID[] = "greenhouse-1";
static const char FIRMWARE[] = "sensor-example-1.0.0";
static const unsigned long DATA_EVERY_MS = 2000;
static const unsigned long PING_EVERY_MS = 5000;

enum { FIELD_TEMPERATURE = 1, FIELD_LIGHT = 2, FIELD_UPTIME = 3 };

static const ol_field_def FIELDS[] = {
    {FIELD_TEMPERATURE, OL_FLOAT32, "temperature", "\xC2\xB0" "C"},
    {FIELD_LIGHT, OL_UINT32, "light", ""},
    {FIELD_UPTIME, OL_UINT32, "uptime", "s"},
};

static uint8_t txBuf[OL_WIRE_MAX];
static uint8_t rxBuf[32];
static ol_rx rx;
static uint8_t seq; // this device's frame counter; wraps at 256 as the protocol expects
static unsigned long lastData, lastPing;

// Sends a frame a builder just wrote into txBuf (a negative length is a bug in this sketch).
static void sendFrame(int len) {
  if (len <= 0) return;
  Serial.write(txBuf, (size_t)len);
  seq++;
}

// Announces the device and its fields; the gateway needs it to name topics.
static void sendHello() {
  sendFrame(ol_build_hello(txBuf, sizeof txBuf, seq, DEVICE_ID, FIRMWARE, FIELDS,
                           (uint8_t)(sizeof FIELDS / sizeof FIELDS[0])));
}

// TMP36: 10 mV per degree with a 500 mV offset, read against the 5 V reference.
static float readTemperature() {
  float volts = analogRead(A0) * (5.0f / 1023.0f);
  return (volts - 0.5f) * 100.0f;
}

// Takes the readings and sends them as one DATA frame.
static void sendData() {
  ol_data_builder b;
  ol_data_begin(&b, txBuf, sizeof txBuf, seq);
  ol_data_float32(&b, FIELD_TEMPERATURE, readTemperature());
  ol_data_uint32(&b, FIELD_LIGHT, (uint32_t)analogRead(A1));
  ol_data_uint32(&b, FIELD_UPTIME, (uint32_t)(millis() / 1000));
  sendFrame(ol_data_finish(&b));
}

// A sensor has one command: `$hello`. NAK the rest so the gateway stops retrying at once.
static void handleFrame(const ol_frame *f) {
  if (f->type != OL_TYPE_CMD) return;
  if (ol_cmd_is(f, "$hello")) {
    sendFrame(ol_build_ack(txBuf, sizeof txBuf, seq, f->seq));
    sendHello();
  } else {
    sendFrame(ol_build_nak(txBuf, sizeof txBuf, seq, f->seq, OL_NAK_UNKNOWN_COMMAND, NULL));
  }
}

void setup() {
  Serial.begin(115200);
  ol_rx_init(&rx, rxBuf, sizeof rxBuf);
  // A lone delimiter ends whatever half-frame the gateway heard while we were resetting.
  Serial.write((uint8_t)0);
  sendHello();
  lastData = lastPing = millis();
}

void loop() {
  unsigned long now = millis();
  // Unsigned subtraction keeps these right across the 49-day millis() wrap.
  if (now - lastData >= DATA_EVERY_MS) {
    lastData = now;
    sendData();
  }
  if (now - lastPing >= PING_EVERY_MS) {
    lastPing = now;
    sendFrame(ol_build_ping(txBuf, sizeof txBuf, seq));
  }
  while (Serial.available() > 0) {
    // Receive errors need no handling: the receiver already skipped to the next frame.
    if (ol_rx_push(&rx, (uint8_t)Serial.read()) == OL_RX_FRAME) handleFrame(&rx.frame);
  }
}
