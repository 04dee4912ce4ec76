/*
 * Arduino.h - declarations only, for `make sketches`: enough of the Arduino core for the example
 * sketches to compile as C++ on the host (-fsyntax-only, nothing runs). It mirrors the real
 * signatures the sketches use, so a sketch that compiles here compiles in the Arduino IDE.
 */
#ifndef OL_TEST_ARDUINO_H
#define OL_TEST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>

#define HIGH 0x1
#define LOW 0x0
#define INPUT 0x0
#define OUTPUT 0x1
#define LED_BUILTIN 13
#define A0 14
#define A1 15

unsigned long millis(void);
void delay(unsigned long ms);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t val);
int digitalRead(uint8_t pin);
int analogRead(uint8_t pin);

class HardwareSerial {
public:
    void begin(unsigned long baud);
    int available(void);
    int read(void);
    size_t write(uint8_t b);
    size_t write(const uint8_t *buf, size_t size);
    operator bool() { return true; }
};

extern HardwareSerial Serial;

#endif
