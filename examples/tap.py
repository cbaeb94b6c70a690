#!/usr/bin/env python3
"""Tap the telemetry bus from Python: print every Envelope as one JSON line.

Shows that any protobuf client can follow the system from proto/fi.proto alone.
Connects a SUB socket to the telemetry proxy's XPUB endpoint, decodes each message
as fi.v1.Envelope and prints it as JSON on stdout. Sequence gaps (a sender's `seq`
jumping forward, i.e. lost messages) go to stderr as they happen, and as a per-sender
summary at exit.

Setup (once):   scripts/bootstrap    # .venv with pyzmq + protobuf, and .build/python/fi_pb2.py
Run:            .venv/bin/python examples/tap.py tcp://127.0.0.1:5581
With CURVE (compose): .venv/bin/python examples/tap.py tcp://127.0.0.1:5581 \
                          --curve-secret host.secret --curve-server server.key   (files from `fi keys generate`)
"""
import argparse
import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATED = os.path.join(HERE, "..", ".build", "python")


def load_modules():
    """Imports pyzmq and the generated module, or exits with what to run."""
    sys.path.insert(0, GENERATED)
    try:
        import zmq
        from google.protobuf import json_format
        from google.protobuf.message import DecodeError
        import fi_pb2
    except ImportError as e:
        sys.exit(f"tap.py: {e}. Run scripts/bootstrap first (it creates .venv and "
                 f"generates {os.path.normpath(GENERATED)}/fi_pb2.py), then use .venv/bin/python.")
    return zmq, json_format, DecodeError, fi_pb2


class GapCounter:
    """Per-sender sequence tracking: expects seq to grow by one per message."""

    def __init__(self):
        self.last = {}      # sender -> last seq seen
        self.received = {}  # sender -> messages
        self.lost = {}      # sender -> messages missing in gaps
        self.gaps = {}      # sender -> number of gaps

    def observe(self, sender, seq):
        """Returns the number of messages lost before this one (0 when in order)."""
        self.received[sender] = self.received.get(sender, 0) + 1
        prev = self.last.get(sender)
        self.last[sender] = seq if prev is None else max(prev, seq)
        if prev is None or seq <= prev + 1:
            return 0  # first message, in order, or a duplicate/restart
        missing = seq - prev - 1
        self.lost[sender] = self.lost.get(sender, 0) + missing
        self.gaps[sender] = self.gaps.get(sender, 0) + 1
        return missing

    def summary(self):
        return {s: {"received": n, "gaps": self.gaps.get(s, 0), "lost": self.lost.get(s, 0),
                    "last_seq": self.last[s]} for s, n in sorted(self.received.items())}


def read_key(path):
    """One line of 40 Z85 characters, as `fi keys generate` writes it."""
    with open(path) as f:
        key = f.read().strip()
    if len(key) != 40:
        sys.exit(f"tap.py: {path} is not a CURVE key file (one line of 40 Z85 characters)")
    return key.encode()


def use_curve(zmq, sock, secret_file, server_file):
    """Makes `sock` a CURVE client: signs with the secret key, trusts the server's public key."""
    secret = read_key(secret_file)
    sock.curve_secretkey = secret
    sock.curve_publickey = zmq.curve_public(secret)
    sock.curve_serverkey = read_key(server_file)


def decode(frames, fi_pb2, DecodeError):
    """The Envelope is frame 0, or frame 1 when a publisher sends a topic frame first.
    Later frames are raw tensor payloads (see Tensor.frame in the .proto)."""
    for frame in frames[:2]:
        env = fi_pb2.Envelope()
        try:
            env.ParseFromString(frame)
        except DecodeError:
            continue
        if env.version != 0 and env.WhichOneof("body") is not None:
            return env
    return None


def main():
    zmq, json_format, DecodeError, fi_pb2 = load_modules()  # before --help, so --help proves the setup
    ap = argparse.ArgumentParser(description="Print telemetry Envelopes as JSON lines; report sequence gaps per sender.")
    ap.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5581",
                    help="telemetry XPUB endpoint (default: %(default)s, compose's published port)")
    ap.add_argument("--topic", default="", help="subscription prefix (default: everything)")
    ap.add_argument("--count", type=int, default=0, help="stop after this many messages (0: run until Ctrl-C)")
    ap.add_argument("--timeout", type=float, default=0, help="stop after this many idle seconds (0: never)")
    ap.add_argument("--curve-secret", help="CURVE secret key file of this client (allow-listed by the proxy)")
    ap.add_argument("--curve-server", help="the proxy's CURVE public key file")
    args = ap.parse_args()
    if bool(args.curve_secret) != bool(args.curve_server):
        ap.error("--curve-secret and --curve-server go together")

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, args.topic.encode())
    if args.curve_secret:
        use_curve(zmq, sub, args.curve_secret, args.curve_server)
    sub.connect(args.endpoint)
    gaps = GapCounter()
    # A sender numbers all its kinds together: with a kind filter (e.g. telemetry/load/) skipped seqs are not losses.
    whole_senders = "telemetry/".startswith(args.topic)
    undecodable = 0
    seen = 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while args.count == 0 or seen < args.count:
            if args.timeout and not sub.poll(int(args.timeout * 1000)):
                break
            frames = sub.recv_multipart()
            seen += 1
            env = decode(frames, fi_pb2, DecodeError)
            if env is None:
                undecodable += 1
                print(json.dumps({"tap_error": "undecodable message", "frames": len(frames),
                                  "bytes": sum(len(f) for f in frames)}), file=sys.stderr)
                continue
            missing = gaps.observe(env.sender, env.seq) if whole_senders else 0
            if missing:
                print(json.dumps({"gap": env.sender, "missing": missing, "at_seq": env.seq}), file=sys.stderr)
            line = json_format.MessageToDict(env, preserving_proto_field_name=True)
            print(json.dumps(line, separators=(",", ":")), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        print(json.dumps({"senders": gaps.summary(), "messages": seen, "undecodable": undecodable}),
              file=sys.stderr)
        sub.close()
        ctx.term()


if __name__ == "__main__":
    main()
