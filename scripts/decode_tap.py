#!/usr/bin/env python3
"""Decodes Envelopes from a PUB endpoint with pyzmq and the protoc --python_out module of proto/fi.proto.

Usage: decode_tap.py ENDPOINT BODY [BODY ...]
With FI_CURVE_SECRET and FI_CURVE_SERVER set (key files of `fi keys generate`), it connects over CURVE.
Subscribes to everything, and prints one JSON object per line for the first message of each requested
body kind (e.g. telemetry, model), then exits. Frames: [topic, envelope header, tensor frames...].
Used by the Swift interop test and as a minimal tap.
"""
import json
import os
import struct
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, ".build", "python"))

import zmq  # noqa: E402
import fi_pb2  # noqa: E402


def tensor_json(t, frames):
    data = frames[t.frame] if t.frame > 0 else t.data
    out = {"name": t.name, "shape": list(t.shape), "dtype": fi_pb2.DType.Name(t.dtype), "frame": t.frame, "bytes": len(data)}
    if t.dtype == fi_pb2.DTYPE_F32:
        out["values"] = list(struct.unpack("<%df" % (len(data) // 4), data))
    return out


def main():
    endpoint, wanted = sys.argv[1], set(sys.argv[2:])
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 15000)
    sub.setsockopt(zmq.LINGER, 0)
    if os.environ.get("FI_CURVE_SECRET"):
        secret = open(os.environ["FI_CURVE_SECRET"]).read().strip().encode()
        sub.curve_secretkey = secret
        sub.curve_publickey = zmq.curve_public(secret)
        sub.curve_serverkey = open(os.environ["FI_CURVE_SERVER"]).read().strip().encode()
    sub.connect(endpoint)
    while wanted:
        frames = sub.recv_multipart()
        env = fi_pb2.Envelope()
        env.ParseFromString(frames[1])
        kind = env.WhichOneof("body")
        if kind not in wanted:
            continue
        wanted.discard(kind)
        out = {"topic": frames[0].decode(), "version": env.version, "sender": env.sender, "seq": env.seq, "body": kind}
        if kind == "telemetry":
            ev = env.telemetry.event
            out["event"] = {"severity": fi_pb2.Severity.Name(ev.severity), "kind": ev.kind, "text": ev.text}
        elif kind == "model":
            m = env.model
            out["model"] = {"round": m.round, "cluster": m.cluster, "tier": fi_pb2.Tier.Name(m.tier),
                            "tensors": [tensor_json(t, frames[1:]) for t in m.tensors]}
        print(json.dumps(out), flush=True)
    sub.close()


if __name__ == "__main__":
    main()
