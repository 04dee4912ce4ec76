#!/usr/bin/env python3
"""Writes frames.json, the golden vectors for outpost-link v1.

This is a second, independent implementation of PROTOCOL.md (the C library is the first, the
TypeScript decoder in src/serial/ the third), so a vector is never just "what the C code happens to
produce". Nothing at test time runs this: the JSON it writes is committed, and both test suites
read that file. Regenerate after a deliberate protocol change only:

    python3 firmware-bridge/vectors/gen_frames.py > firmware-bridge/vectors/frames.json

The output is deterministic (no randomness, stable key order), so a diff shows exactly what moved.
"""
import json
import struct
import sys

VERSION = 1
FRAME_MAX = 254
TYPES = {"hello": 1, "data": 2, "cmd": 3, "ack": 4, "nak": 5, "ping": 6}
VALUE_TYPES = {"int32": 1, "float32": 2, "bool": 3, "string": 4, "uint32": 5}


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


assert crc16(b"123456789") == 0x29B1


def cobs_encode(data: bytes) -> bytes:
    """COBS, written block by block as the paper describes it: split at zeros, a block never holds
    more than 254 data bytes, and (PROTOCOL.md) a full 254-byte block that ends the input is not
    followed by an empty 0x01 block."""
    out = bytearray()
    i = 0
    n = len(data)
    while True:
        block = bytearray()
        while i < n and data[i] != 0 and len(block) < 254:
            block.append(data[i])
            i += 1
        if len(block) == 254:
            out.append(0xFF)
            out += block
            if i == n:
                break
            continue  # no zero implied after a full block: the next block starts right here
        out.append(len(block) + 1)
        out += block
        if i == n:
            break
        i += 1  # the zero this block stands for
    return bytes(out)


def cobs_decode(enc: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(enc):
        code = enc[i]
        assert code != 0
        block = enc[i + 1 : i + code]
        assert len(block) == code - 1 and 0 not in block
        out += block
        i += code
        if code != 0xFF and i < len(enc):
            out.append(0)
    return bytes(out)


def str8(s: str) -> bytes:
    b = s.encode("utf-8")
    assert len(b) <= 255 and b"\x00" not in b
    return bytes([len(b)]) + b


def f32_bits(v) -> int:
    if isinstance(v, str):
        return {"NaN": 0x7FC00000, "Infinity": 0x7F800000, "-Infinity": 0xFF800000}[v]
    return struct.unpack(">I", struct.pack(">f", v))[0]


def value_json(id_, type_, value):
    """The JSON shape of one DATA value; float32 also carries its exact bits."""
    v = {"id": id_, "type": type_, "value": value}
    if type_ == "float32":
        bits = f32_bits(value)
        # Store the float32 as the exact double it widens to, so JSON carries it losslessly.
        if not isinstance(value, str):
            exact = struct.unpack(">f", struct.pack(">I", bits))[0]
            v["value"] = exact
        v["bits"] = f"{bits:08x}"
    return v


def encode_value(v) -> bytes:
    t = v["type"]
    out = bytes([v["id"], VALUE_TYPES[t]])
    if t == "int32":
        return out + struct.pack(">i", v["value"])
    if t == "uint32":
        return out + struct.pack(">I", v["value"])
    if t == "float32":
        return out + bytes.fromhex(v["bits"])
    if t == "bool":
        return out + bytes([1 if v["value"] else 0])
    if t == "string":
        return out + str8(v["value"])
    raise ValueError(t)


def encode_body(type_: str, body: dict) -> bytes:
    if type_ == "hello":
        out = str8(body["deviceId"]) + str8(body["firmware"]) + bytes([len(body["fields"])])
        for f in body["fields"]:
            out += bytes([f["id"], VALUE_TYPES[f["type"]]]) + str8(f["name"]) + str8(f["unit"])
        return out
    if type_ == "data":
        return b"".join(encode_value(v) for v in body["values"])
    if type_ == "cmd":
        return str8(body["name"]) + bytes.fromhex(body["argsHex"])
    if type_ == "ack":
        return bytes([body["cmdSeq"]])
    if type_ == "nak":
        return bytes([body["cmdSeq"], body["code"]]) + body["message"].encode("utf-8")
    if type_ == "ping":
        return b""
    raise ValueError(type_)


def seal(version: int, type_code: int, seq: int, body: bytes) -> bytes:
    """Header + body + big-endian CRC: the decoded frame."""
    head = bytes([version, type_code, seq]) + body
    return head + struct.pack(">H", crc16(head))


def wire(decoded: bytes) -> bytes:
    return cobs_encode(decoded) + b"\x00"


good = []


def add_good(name, description, type_, seq, body):
    decoded = seal(VERSION, TYPES[type_], seq, encode_body(type_, body))
    assert 5 <= len(decoded) <= FRAME_MAX, (name, len(decoded))
    w = wire(decoded)
    assert cobs_decode(w[:-1]) == decoded
    assert len(w) == len(decoded) + 2  # one code byte + delimiter, always, up to 254 bytes
    good.append(
        {
            "name": name,
            "description": description,
            "frame": {"version": VERSION, "type": type_, "seq": seq, "body": body},
            "decodedHex": decoded.hex(),
            "wireHex": w.hex(),
        }
    )
    return decoded


# --- good frames -------------------------------------------------------------------------------

add_good(
    "hello-sensor",
    "HELLO of a three-field sensor; the counter has an empty unit",
    "hello",
    0,
    {
        "deviceId": "greenhouse-1",
        "firmware": "1.0.0",
        "fields": [
            {"id": 1, "type": "float32", "name": "temperature", "unit": "°C"},
            {"id": 2, "type": "float32", "name": "humidity", "unit": "%"},
            {"id": 3, "type": "uint32", "name": "counter", "unit": ""},
        ],
    },
)
add_good(
    "hello-actuator-no-fields",
    "HELLO with an empty firmware version and no fields (a device that only takes commands)",
    "hello",
    0,
    {"deviceId": "relay-7", "firmware": "", "fields": []},
)
add_good(
    "hello-all-types-utf8",
    "HELLO declaring every value type, with multi-byte UTF-8 in names and units",
    "hello",
    17,
    {
        "deviceId": "serre-été-2",
        "firmware": "2.3.1-rc.1+g1a2b3c",
        "fields": [
            {"id": 0, "type": "int32", "name": "offset", "unit": "mm"},
            {"id": 10, "type": "float32", "name": "conductivity", "unit": "µS/cm"},
            {"id": 20, "type": "bool", "name": "door_open", "unit": ""},
            {"id": 30, "type": "string", "name": "état", "unit": ""},
            {"id": 255, "type": "uint32", "name": "uptime", "unit": "s"},
        ],
    },
)
add_good(
    "data-sensor",
    "DATA matching hello-sensor: two floats and a uint32",
    "data",
    1,
    {
        "values": [
            value_json(1, "float32", 21.5),
            value_json(2, "float32", 48.25),
            value_json(3, "uint32", 42),
        ]
    },
)
add_good(
    "data-all-types",
    "DATA with one value of each type",
    "data",
    2,
    {
        "values": [
            value_json(0, "int32", -1),
            value_json(10, "float32", 0.1),
            value_json(20, "bool", True),
            value_json(30, "string", "ok"),
            value_json(255, "uint32", 4294967295),
        ]
    },
)
add_good(
    "data-integer-edges",
    "int32 and uint32 limits; 0, 1 and 256 put 0x00 bytes inside the values",
    "data",
    3,
    {
        "values": [
            value_json(1, "int32", 0),
            value_json(2, "int32", 1),
            value_json(3, "int32", -1),
            value_json(4, "int32", -2147483648),
            value_json(5, "int32", 2147483647),
            value_json(6, "int32", -256),
            value_json(7, "uint32", 0),
            value_json(8, "uint32", 256),
            value_json(9, "uint32", 4294967295),
            value_json(10, "uint32", 2147483648),
        ]
    },
)
add_good(
    "data-float-specials",
    "float32 NaN (canonical quiet NaN), infinities, signed zeros, smallest subnormal, largest finite",
    "data",
    4,
    {
        "values": [
            value_json(1, "float32", "NaN"),
            value_json(2, "float32", "Infinity"),
            value_json(3, "float32", "-Infinity"),
            value_json(4, "float32", -0.0),
            value_json(5, "float32", 0.0),
            value_json(6, "float32", struct.unpack(">f", bytes.fromhex("00000001"))[0]),
            value_json(7, "float32", struct.unpack(">f", bytes.fromhex("7f7fffff"))[0]),
            value_json(8, "float32", -273.15),
        ]
    },
)
add_good(
    "data-bools-and-empty-string",
    "bool false and true, and an empty string value",
    "data",
    5,
    {
        "values": [
            value_json(1, "bool", False),
            value_json(2, "bool", True),
            value_json(3, "string", ""),
        ]
    },
)
add_good("data-empty", "DATA with no values at all (allowed, nothing to publish)", "data", 6, {"values": []})
add_good(
    "data-seq-255",
    "the last sequence number before the counter wraps to 0",
    "data",
    255,
    {"values": [value_json(1, "int32", 7)]},
)

# A 254-byte frame with no zero byte anywhere: its COBS form is one full 0xFF block and nothing
# after it, the one place where encoders differ (see PROTOCOL.md). Body: one string value that
# fills the frame: 3 header + 3 (id, type, length) + 246 + 2 CRC = 254. The seq is chosen so the
# CRC has no zero byte either.
for seq in range(1, 256):
    body = {"values": [value_json(9, "string", "A" * 246)]}
    d = seal(VERSION, TYPES["data"], seq, encode_body("data", body))
    if 0 not in d:
        break
d = add_good(
    "data-max-length-no-zero",
    "largest frame (254 bytes), no 0x00 anywhere: COBS is a single 0xFF block, 256 bytes on the wire",
    "data",
    seq,
    body,
)
assert len(d) == FRAME_MAX and 0 not in d
add_good(
    "data-max-length-zeros",
    "largest frame (254 bytes) made of 41 uint32 zeros and one bool: many 0x00 bytes",
    "data",
    7,
    {"values": [value_json(i, "uint32", 0) for i in range(1, 42)] + [value_json(42, "bool", False)]},
)
assert len(bytes.fromhex(good[-1]["decodedHex"])) == FRAME_MAX

add_good("cmd-led-on", "CMD led with argument 0x01", "cmd", 0, {"name": "led", "argsHex": "01"})
add_good("cmd-led-off", "CMD led with argument 0x00", "cmd", 1, {"name": "led", "argsHex": "00"})
add_good("cmd-no-args", "CMD without argument bytes (the reserved $hello)", "cmd", 2, {"name": "$hello", "argsHex": ""})
add_good(
    "cmd-binary-args",
    "CMD whose argument bytes hold zeros and 0xff",
    "cmd",
    3,
    {"name": "interval", "argsHex": "000003e8"},
)
add_good(
    "cmd-max-length",
    "largest CMD: 3 header + 4 name + 245 argument bytes + 2 CRC = 254",
    "cmd",
    200,
    {"name": "raw", "argsHex": bytes((i * 7) & 0xFF for i in range(245)).hex()},
)
assert len(bytes.fromhex(good[-1]["decodedHex"])) == FRAME_MAX
add_good("ack", "ACK of the CMD with seq 7", "ack", 9, {"cmdSeq": 7})
add_good("ack-zeros", "ACK with seq 0 of CMD seq 0", "ack", 0, {"cmdSeq": 0})
add_good(
    "nak-unknown-command",
    "NAK code 1 (unknown command) with a message",
    "nak",
    10,
    {"cmdSeq": 4, "code": 1, "message": "unknown command: fan"},
)
add_good("nak-no-message", "NAK code 2 (bad arguments) without a message", "nak", 11, {"cmdSeq": 5, "code": 2, "message": ""})
add_good(
    "nak-application-code",
    "NAK with an application-defined code (0x80..0xff) and UTF-8 message",
    "nak",
    12,
    {"cmdSeq": 255, "code": 0x81, "message": "moteur bloqué"},
)
add_good("ping", "PING, empty body", "ping", 3, {})
add_good("ping-seq-255", "PING with seq 255", "ping", 255, {})

# A frame whose CRC itself contains a 0x00 byte, so COBS has to hide it too.
for seq in range(256):
    d = seal(VERSION, TYPES["ping"], seq, b"")
    if 0 in d[-2:]:
        break
add_good("ping-crc-has-zero", "PING whose CRC contains a 0x00 byte", "ping", seq, {})


# --- bad inputs --------------------------------------------------------------------------------

bad = []


def add_bad(name, description, w: bytes, error: str):
    assert w[-1] == 0 and 0 not in w[:-1], name
    assert error in ("cobs", "too_long", "crc", "version", "type", "malformed")
    bad.append({"name": name, "description": description, "wireHex": w.hex(), "error": error})


def good_decoded(name):
    return bytes.fromhex(next(g for g in good if g["name"] == name)["decodedHex"])


def raw(type_code, seq, body, version=VERSION):
    return wire(seal(version, type_code, seq, body))


ping = good_decoded("ping")
add_bad("crc-last-byte-wrong", "PING with the low CRC byte off by one", wire(ping[:-1] + bytes([ping[-1] ^ 0x01])), "crc")
add_bad("crc-little-endian", "PING with the CRC bytes swapped (little-endian)", wire(ping[:-2] + ping[-2:][::-1]), "crc")
sensor = bytearray(good_decoded("data-sensor"))
sensor[8] ^= 0x40
add_bad("crc-body-corrupted", "data-sensor with one bit flipped inside a float", wire(bytes(sensor)), "crc")
add_bad(
    "crc-version-byte-corrupted",
    "the CRC covers the header: ping with version changed to 2 but the old CRC",
    wire(bytes([2]) + ping[1:]),
    "crc",
)

add_bad("cobs-block-past-end", "code byte 0x05 promises 4 bytes, the frame ends after 2", bytes.fromhex("0501020300"), "cobs")
w = bytearray(wire(good_decoded("data-sensor")))
# The last block's code byte, found by walking the blocks, made one too large.
i = 0
while i + w[i] < len(w) - 1:
    i += w[i]
w[i] += 1
add_bad("cobs-last-code-too-large", "data-sensor with its last COBS code byte one too large", bytes(w), "cobs")
add_bad("cobs-ff-block-short", "a 0xFF block with only 3 of its 254 bytes", bytes.fromhex("ff41424300"), "cobs")

long_body = bytes([9, 4, 247]) + b"B" * 247  # 3 + 250 + 2 = 255 decoded bytes
too_long = seal(VERSION, TYPES["data"], 1, long_body)
assert len(too_long) == FRAME_MAX + 1
add_bad("too-long-255", "a frame that is otherwise valid but decodes to 255 bytes", wire(too_long), "too_long")
add_bad("too-long-noise", "300 bytes of 0x41 noise before a delimiter", b"\x41" * 300 + b"\x00", "too_long")

add_bad("short-empty", "COBS 0x01 decodes to an empty frame: no header, no CRC", bytes.fromhex("0100"), "malformed")
add_bad("short-4-bytes", "a 4-byte frame, one byte short of header + CRC", wire(bytes([1, 6, 0, 0x12])), "malformed")

add_bad("version-0", "PING with version 0 and a valid CRC", raw(6, 0, b"", version=0), "version")
add_bad("version-2", "PING with version 2 and a valid CRC", raw(6, 0, b"", version=2), "version")
add_bad(
    "version-2-type-7",
    "both version and type unknown: version is checked first (a v2 may renumber types)",
    raw(7, 0, b"", version=2),
    "version",
)
add_bad("type-0", "type 0 with a valid CRC", raw(0, 0, b""), "type")
add_bad("type-7", "type 7, the first unassigned", raw(7, 0, b""), "type")
add_bad("type-255", "type 255", raw(255, 0, b"\x01\x02"), "type")

hello = good_decoded("hello-sensor")[3:-2]
count_at = 1 + len("greenhouse-1") + 1 + len("1.0.0")
assert hello[count_at] == 3
add_bad("hello-truncated", "hello-sensor cut inside its second field (CRC recomputed)", raw(1, 0, hello[:30]), "malformed")
add_bad("hello-empty-body", "HELLO without a body", raw(1, 0, b""), "malformed")
add_bad(
    "hello-count-too-large",
    "field count says 4, three fields follow",
    raw(1, 0, hello[:count_at] + bytes([4]) + hello[count_at + 1 :]),
    "malformed",
)
add_bad("hello-trailing-byte", "hello-sensor with one extra byte after the last field", raw(1, 0, hello + b"\x00"), "malformed")
add_bad(
    "hello-empty-device-id",
    "device id of length 0",
    raw(1, 0, str8("") + str8("1.0") + b"\x00"),
    "malformed",
)
add_bad(
    "hello-unknown-value-type",
    "a field declared with value type 6",
    raw(1, 0, str8("d") + str8("") + b"\x01" + bytes([1, 6]) + str8("x") + str8("")),
    "malformed",
)
add_bad(
    "hello-duplicate-field-id",
    "two fields with id 1",
    raw(1, 0, str8("d") + str8("") + b"\x02" + bytes([1, 1]) + str8("a") + str8("") + bytes([1, 2]) + str8("b") + str8("")),
    "malformed",
)
add_bad(
    "hello-empty-field-name",
    "a field whose name has length 0",
    raw(1, 0, str8("d") + str8("") + b"\x01" + bytes([1, 1]) + str8("") + str8("")),
    "malformed",
)
add_bad("data-truncated-int32", "an int32 value with only 2 of its 4 bytes", raw(2, 0, bytes([1, 1, 0, 5])), "malformed")
add_bad("data-truncated-float32", "a float32 value with 3 bytes", raw(2, 0, bytes([1, 2, 0x41, 0xAC, 0x00])), "malformed")
add_bad("data-truncated-string", "string length 10, 3 bytes follow", raw(2, 0, bytes([1, 4, 10]) + b"abc"), "malformed")
add_bad("data-missing-value", "field id and value type, then the body ends", raw(2, 0, bytes([1, 5])), "malformed")
add_bad("data-lone-field-id", "a field id alone", raw(2, 0, bytes([1])), "malformed")
add_bad("data-value-type-0", "value type 0", raw(2, 0, bytes([1, 0, 0, 0, 0, 0])), "malformed")
add_bad("data-value-type-6", "value type 6", raw(2, 0, bytes([1, 6, 0, 0, 0, 0])), "malformed")
add_bad("data-bool-2", "a bool that is neither 0 nor 1", raw(2, 0, bytes([1, 3, 2])), "malformed")
add_bad("data-utf8-invalid", "string bytes C3 28 (a lead byte without its continuation)", raw(2, 0, bytes([1, 4, 2, 0xC3, 0x28])), "malformed")
add_bad("data-utf8-overlong", "string bytes C0 AF (overlong '/')", raw(2, 0, bytes([1, 4, 2, 0xC0, 0xAF])), "malformed")
add_bad("data-utf8-surrogate", "string bytes ED A0 80 (U+D800, a surrogate)", raw(2, 0, bytes([1, 4, 3, 0xED, 0xA0, 0x80])), "malformed")
add_bad("data-utf8-too-high", "string bytes F4 90 80 80 (above U+10FFFF)", raw(2, 0, bytes([1, 4, 4, 0xF4, 0x90, 0x80, 0x80])), "malformed")
add_bad("data-utf8-cut", "string ends in the middle of a 3-byte sequence", raw(2, 0, bytes([1, 4, 2, 0xE2, 0x82])), "malformed")
add_bad("data-string-nul", "string with a U+0000 inside", raw(2, 0, bytes([1, 4, 3, 0x61, 0x00, 0x62])), "malformed")
add_bad("cmd-empty-body", "CMD without a body", raw(3, 0, b""), "malformed")
add_bad("cmd-empty-name", "CMD whose name has length 0", raw(3, 0, bytes([0, 1])), "malformed")
add_bad("cmd-name-truncated", "CMD name length 5, 3 bytes follow", raw(3, 0, bytes([5]) + b"led"), "malformed")
add_bad("ack-empty", "ACK without the CMD seq", raw(4, 0, b""), "malformed")
add_bad("ack-trailing-byte", "ACK with two body bytes", raw(4, 0, bytes([7, 0])), "malformed")
add_bad("nak-no-code", "NAK with the CMD seq only", raw(5, 0, bytes([7])), "malformed")
add_bad("nak-utf8-invalid", "NAK message with a stray continuation byte", raw(5, 0, bytes([7, 1, 0x80])), "malformed")
add_bad("ping-with-body", "PING with one body byte", raw(6, 0, bytes([1])), "malformed")


# --- streams: several frames, noise and idle delimiters in one byte sequence ----------------------


def good_wire(name):
    return bytes.fromhex(next(g for g in good if g["name"] == name)["wireHex"])


def bad_wire(name):
    return bytes.fromhex(next(b for b in bad if b["name"] == name)["wireHex"])


streams = []


def add_stream(name, description, parts):
    data = b""
    events = []
    for kind, x in parts:
        if kind == "frame":
            data += good_wire(x)
            events.append({"frame": x})
        elif kind == "bad":
            data += bad_wire(x)
            events.append({"error": next(b for b in bad if b["name"] == x)["error"]})
        elif kind == "bytes":
            data += x
        elif kind == "error":
            events.append({"error": x})
    streams.append({"name": name, "description": description, "wireHex": data.hex(), "events": events})


add_stream(
    "back-to-back",
    "frames share delimiters: no extra 0x00 between them",
    [("frame", "hello-sensor"), ("frame", "data-sensor"), ("frame", "ping")],
)
add_stream(
    "idle-delimiters",
    "runs of 0x00 before, between and after frames are empty frames and are skipped silently",
    [("bytes", b"\x00\x00\x00"), ("frame", "ping"), ("bytes", b"\x00\x00"), ("frame", "ack"), ("bytes", b"\x00")],
)
add_stream(
    "noise-then-resync",
    "line noise (no 0x00 in it) runs into a delimiter, is reported once, and the next frame is intact",
    [("bytes", bytes.fromhex("a1b2c3d4e5")), ("bytes", b"\x00"), ("error", "cobs"), ("frame", "data-sensor")],
)
add_stream(
    "mid-frame-start",
    "the receiver starts listening in the middle of a frame: the tail is one error, the next frame is intact",
    [("bytes", good_wire("data-sensor")[9:]), ("error", "crc"), ("frame", "ping")],
)
add_stream(
    "errors-between-frames",
    "one error per bad frame, good frames around them unaffected",
    [
        ("frame", "ping"),
        ("bad", "crc-last-byte-wrong"),
        ("frame", "ack"),
        ("bad", "too-long-noise"),
        ("frame", "cmd-led-on"),
        ("bad", "type-7"),
        ("frame", "nak-no-message"),
    ],
)

# The mid-frame stream's claimed event must match what a receiver sees; check with the reference.
tail = good_wire("data-sensor")[9:-1]
dec = cobs_decode(tail)
assert len(dec) >= 5 and crc16(dec[:-2]) != struct.unpack(">H", dec[-2:])[0]


doc = {
    "protocol": "outpost-link",
    "version": VERSION,
    "description": "Golden vectors for outpost-link v1; the shape is documented in firmware-bridge/PROTOCOL.md",
    "limits": {"frameMin": 5, "frameMax": FRAME_MAX, "wireMin": 7, "wireMax": FRAME_MAX + 2},
    "good": good,
    "bad": bad,
    "streams": streams,
}
# allow_nan=False: NaN and infinities are not JSON; the vectors spell them as strings.
text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
sys.stdout.write(text + "\n")
