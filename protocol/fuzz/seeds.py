#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the Java reference vectors.

Usage (from this directory): python3 seeds.py

Every seed starts with the configuration byte the targets read (see fuzz_targets/*.rs):
  corpus/frame/       v1 frames as Java wrote them, the same bodies in v0 frames and in frames of
                      every compressor, and multi-frame streams fed whole and in chunks;
  corpus/body/        every body, plus seata-go's one-byte failure-message layout of 4, 6, 14, 22,
                      and every request or response alone in each kind of container;
  corpus/decompress/  a few bodies compressed with every compressor Seata has.
Standard library only: LZ4Block and zstd seeds use stored (raw) blocks, which the fuzzer mutates
into compressed ones. Existing files of the same name are overwritten; nothing else is touched.
"""

import bz2
import gzip
import io
import json
import os
import struct
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "vectors", "java-seata-codec.json")

# Configuration byte: bits 0-1 code table (0 = 2.x), bit 2 seata-go layout, bits 3-7 chunk size.
CONFIG_WHOLE = 0x00
CONFIG_GO_V1_7 = 0x05


def config_chunks(size):
    return size << 3


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


# --- compressors, byte-compatible with Seata's (see protocol/src/compress.rs) ---------------------

_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data, seed):
    n, i = len(data), 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed, (seed - _P1) & _M32]
        while i + 16 <= n:
            for k in range(4):
                (lane,) = struct.unpack_from("<I", data, i + 4 * k)
                v[k] = (_rotl((v[k] + lane * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while i + 4 <= n:
        (lane,) = struct.unpack_from("<I", data, i)
        h = (_rotl((h + lane * _P3) & _M32, 17) * _P4) & _M32
        i += 4
    while i < n:
        h = (_rotl((h + data[i] * _P5) & _M32, 11) * _P1) & _M32
        i += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


def lz4_block_raw(data):
    """lz4-java's LZ4BlockOutputStream framing with stored blocks of at most 1024 bytes."""
    out = b""
    for at in range(0, len(data), 1024):
        chunk = data[at : at + 1024]
        check = xxh32(chunk, 0x9747B28C) & 0x0FFFFFFF
        out += b"LZ4Block" + bytes([0x10]) + struct.pack("<III", len(chunk), len(chunk), check) + chunk
    return out + b"LZ4Block" + bytes([0x10]) + struct.pack("<III", 0, 0, 0)


def zstd_raw(data):
    """One zstd frame, single segment, with the content in one raw block."""
    if len(data) < 256:
        header = bytes([0x20, len(data)])
    else:
        header = bytes([0x60]) + struct.pack("<H", len(data) - 256)
    block = struct.pack("<I", 1 | (len(data) << 3))[:3]
    return b"\x28\xb5\x2f\xfd" + header + block + data


def zip_one(data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("zip", date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


COMPRESSORS = {
    1: ("gzip", lambda d: gzip.compress(d, mtime=0)),
    2: ("zip", zip_one),
    4: ("bzip2", lambda d: bz2.compress(d)[2:]),  # Ant's CBZip2 streams lack the "BZ" magic
    5: ("lz4", lz4_block_raw),
    6: ("deflater", zlib.compress),
    7: ("zstd", zstd_raw),
}


# --- frames ---------------------------------------------------------------------------------------


def v1_frame(msg_type, compressor, request_id, body):
    head = struct.pack(">2sBIHBBBI", b"\xda\xda", 1, 16 + len(body), 16, msg_type, 1, compressor, request_id)
    return head + body


def v0_frame(flag, code_or_len, request_id, payload):
    return struct.pack(">2sHhq", b"\xda\xda", flag, code_or_len, request_id) + payload


V0_REQUEST, V0_ASYNC, V0_HEARTBEAT, V0_SEATA = 0x80, 0x40, 0x20, 0x10


def main():
    with open(VECTORS, encoding="utf-8") as f:
        records = json.load(f)
    frames = {}
    for rec in records:
        name = rec["name"]
        frame = bytes.fromhex(rec["frame_hex"])
        body = bytes.fromhex(rec["body_hex"] or "")
        frames[name] = frame
        write("frame", name, bytes([CONFIG_WHOLE]) + frame)
        if body:
            write("body", name, bytes([CONFIG_WHOLE]) + body)
            if rec["message_type_code"] in (4, 6, 14, 22) and body[2] == 0:  # Failed: go layout
                (length,) = struct.unpack_from(">H", body, 3)
                if length < 256:
                    go = body[:3] + bytes([length]) + body[5:]
                    write("body", name + "-go", bytes([CONFIG_GO_V1_7]) + go)
            # The same body in a v0 frame, as a request or a response.
            (code,) = struct.unpack_from(">h", body, 0)
            meta = rec["frame_meta"]
            flag = V0_SEATA | (V0_REQUEST if meta["message_type"] in (0, 2) else 0)
            if meta["message_type"] == 2:
                flag |= V0_ASYNC
            if meta["compressor"] == 0:
                write("frame", name + "-v0", bytes([CONFIG_WHOLE]) + v0_frame(flag, code, meta["request_id"], body[2:]))

    # Each request in a MergedWarpMessage (59, with ids) and each response in a MergeResultMessage
    # (60) and a BatchResultMessage (121), under the standard and the seata-go context.
    for rec in records:
        body = bytes.fromhex(rec["body_hex"] or "")
        code = rec["message_type_code"]
        if not body or code in (59, 60, 101, 102, 103, 104, 120, 121):
            continue
        if code % 2 == 1:
            wrapped = [(59, struct.pack(">h", 1) + body + struct.pack(">i", 7))]
        else:
            wrapped = [(60, struct.pack(">h", 1) + body), (121, struct.pack(">h", 1) + body + struct.pack(">i", 7))]
        for container, content in wrapped:
            packed = struct.pack(">hi", container, len(content)) + content
            write("body", f"{rec['name']}-in-{container}", bytes([CONFIG_WHOLE]) + packed)
            if code in (4, 6, 14, 22):
                write("body", f"{rec['name']}-in-{container}-go", bytes([CONFIG_GO_V1_7]) + packed)

    # Bodies in frames of every compressor, and compressed on their own.
    samples = ["GlobalBeginRequest", "BranchRegisterRequest_AT", "MergedWarpMessage", "BranchCommitResponse_failed_unretryable"]
    by_name = {r["name"]: bytes.fromhex(r["body_hex"] or "") for r in records}
    for name in samples:
        body = by_name[name]
        for cid, (cname, fn) in COMPRESSORS.items():
            packed = fn(body)
            write("frame", f"{name}-{cname}", bytes([CONFIG_WHOLE]) + v1_frame(0, cid, 9, packed))
            write("decompress", f"{name}-{cname}", packed)

    # v0 heartbeat, v0 Hessian body (codec not supported: the frame is still delimited).
    write("frame", "v0-heartbeat", bytes([CONFIG_WHOLE]) + v0_frame(V0_HEARTBEAT | V0_REQUEST, 0, 5, b""))
    write("frame", "v0-hessian", bytes([CONFIG_WHOLE]) + v0_frame(V0_REQUEST, 7, 6, b"hessian"))

    # Streams of several frames, fed whole and in chunks.
    stream = frames["RegisterTMRequest"] + frames["HeartbeatMessage_ping"] + frames["GlobalBeginRequest"] + frames["MergedWarpMessage"]
    for chunk in (0, 1, 7, 31):
        write("frame", f"stream-chunks-{chunk}", bytes([config_chunks(chunk)]) + stream)
    go_stream = frames["BranchCommitResponse_failed_unretryable"] + frames["GlobalLockQueryResponse"]
    write("frame", "stream-go-chunks-5", bytes([config_chunks(5) | CONFIG_GO_V1_7]) + go_stream)


if __name__ == "__main__":
    main()
