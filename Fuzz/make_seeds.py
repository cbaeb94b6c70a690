#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses (scripts/fuzz runs this; the output is not committed).

Usage: make_seeds.py OUT_DIR
Writes OUT_DIR/<harness>/<name> files: valid inputs each harness starts mutating from. Envelopes come from the
protoc --python_out module of proto/fi.proto (scripts/bootstrap generates it), one per body and telemetry kind, so
a body added to the proto gets seeds without touching this file; the file formats are written here by hand.
Repository files that are seeds as they are (examples/, tokenizer fixtures, models/base/config.json) are passed
to libFuzzer as extra corpus folders by scripts/fuzz instead.
"""
import json
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build", "python"))
import fi_pb2  # noqa: E402

FRAME = b"FRM|"  # the envelope and tap harnesses split frames at this marker


def write(out, harness, name, data):
    folder = os.path.join(out, harness)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def tensor(t, name, shape, values, frame=0):
    t.name = name
    t.shape.extend(shape)
    t.dtype = fi_pb2.DTYPE_F32
    data = struct.pack("<%df" % len(values), *values)
    if frame:
        t.frame = frame
        return data
    t.data = data
    return b""


def fill(msg, depth=0):
    """Sets every scalar field of msg (and its sub-messages) to a small non-default value."""
    for field in msg.DESCRIPTOR.fields:
        if field.containing_oneof is not None and field.containing_oneof.name == "body":
            continue
        repeated = field.label == field.LABEL_REPEATED
        if field.message_type is not None:
            if field.message_type.name == "Tensor" or depth > 2:
                continue
            if field.message_type.GetOptions().map_entry:
                getattr(msg, field.name)["k"] = "v"
            elif repeated:
                fill(getattr(msg, field.name).add(), depth + 1)
            else:
                fill(getattr(msg, field.name), depth + 1)
            continue
        if field.type == field.TYPE_STRING:
            value = "a-" + field.name
        elif field.type == field.TYPE_BOOL:
            value = True
        elif field.type == field.TYPE_ENUM:
            value = field.enum_type.values[-1].number
        elif field.type in (field.TYPE_FLOAT, field.TYPE_DOUBLE):
            value = 0.5
        elif field.type == field.TYPE_BYTES:
            value = b"\x01\x02"
        else:
            value = 3
        if repeated:
            getattr(msg, field.name).append(value)
        else:
            setattr(msg, field.name, value)


def envelopes():
    """(name, [frames]) for every body, and every telemetry report kind."""
    out = []
    body = fi_pb2.Envelope.DESCRIPTOR.oneofs_by_name["body"]
    for field in body.fields:
        kinds = [None]
        if field.message_type.name == "Telemetry":
            kinds = [f.name for f in field.message_type.oneofs_by_name["report"].fields]
        for kind in kinds:
            env = fi_pb2.Envelope(version=1, sender="node-a", seq=7, timestamp_us=1_700_000_000_000_000, reply_to=3)
            sub = getattr(env, field.name)
            fill(sub)
            if kind:
                sub.ClearField("report")
                fill(getattr(sub, kind))
            extra = []
            for f in sub.DESCRIPTOR.fields:  # tensors: one inline, one in frame 1
                if f.message_type is not None and f.message_type.name == "Tensor":
                    if f.label == f.LABEL_REPEATED:
                        tensor(getattr(sub, f.name).add(), "lora_A", [2, 3], [0.5, -1, 2, 0, 1e-3, 7])
                        extra.append(tensor(getattr(sub, f.name).add(), "lora_B", [4], [1, 2, 3, 4], frame=1))
                    else:
                        extra.append(tensor(getattr(sub, f.name), "hidden", [1, 4], [1, -1, 0.25, 8], frame=1))
            name = field.name + ("-" + kind if kind else "")
            out.append((name, [env.SerializeToString()] + [e for e in extra if e]))
    return out


def safetensors(tensors):
    header, data = {}, b""
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def byte_level_alphabet():
    """GPT-2's bytes_to_unicode: the 256 symbols a byte-level vocab must hold."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


# Dictionary words (libFuzzer -dict): mutations that insert whole keys and tokens reach past the first parse error.
JSON_WORDS = ["{", "}", "[", "]", ":", ",", '"', "true", "false", "null", "-1", "0", "1e999", "4294967296", '"\\u0000"',
              # safetensors, config.json, adapter_config.json and tokenizer.json keys and values the decoders read
              "dtype", "shape", "data_offsets", "__metadata__", "F32", "F16", "BF16", "I8", "U8", "model_type", "gpt2",
              "llama", "qwen2", "mistral", "vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "hidden_size",
              "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "rope_theta",
              "rope_scaling", "rope_parameters", "rope_type", "factor", "linear", "dynamic", "llama3", "yarn",
              "tie_word_embeddings", "attention_bias", "peft_type", "LORA", "r", "lora_alpha", "target_modules", "c_attn",
              "q_proj", "model", "type", "BPE", "vocab", "merges", "added_tokens", "content", "id", "special", "lstrip",
              "rstrip", "normalizer", "pre_tokenizer", "pretokenizers", "normalizers", "Sequence", "Split", "ByteLevel",
              "Digits", "NFC", "NFKC", "pattern", "Regex", "String", "behavior", "Isolated", "Removed",
              "MergedWithPrevious", "MergedWithNext", "individual_digits", "add_prefix_space", "ignore_merges",
              "byte_fallback", "<|endoftext|>"]


def yaml_words():
    """Every key of the example experiment and scenario files, as `key:`, plus YAML syntax."""
    words = {"- ", ": ", "{", "}", "[", "]", "&a ", "*a", "<<: ", "!!", "---", "null", "~", ".inf", "-.inf", ".nan", "0x10",
             "1e400", "-1", "'", '"'}
    for folder in ["examples", os.path.join("examples", "paper"), os.path.join("examples", "scenarios")]:
        for name in os.listdir(os.path.join(ROOT, folder)):
            if name.endswith(".yaml"):
                with open(os.path.join(ROOT, folder, name)) as f:
                    words.update(k + ":" for k in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*:", f.read()))
    return sorted(words)


def write_dict(path, words):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for w in words:
            f.write('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"\n')


def main():
    out = sys.argv[1]
    write_dict(os.path.join(out, "dicts", "json.dict"), JSON_WORDS + ['"' + w + '"' for w in JSON_WORDS if w.isidentifier()])
    write_dict(os.path.join(out, "dicts", "yaml.dict"), yaml_words())
    for name, frames in envelopes():
        write(out, "envelope", name, FRAME.join(frames))
        write(out, "tap", name, FRAME.join([b"telemetry/x/node-a"] + frames))
        env = fi_pb2.Envelope()
        env.ParseFromString(frames[0])
        which = env.WhichOneof("body")
        index = [f.name for f in fi_pb2.Envelope.DESCRIPTOR.oneofs_by_name["body"].fields].index(which)
        write(out, "body", name, bytes([index]) + getattr(env, which).SerializeToString())
    write(out, "safetensors", "adapter", safetensors([("a.lora_A.weight", [2, 3], [0.5, -1, 2, 0, 1e-3, 7]),
                                                     ("a.lora_B.weight", [3, 2], [0.0] * 6)]))
    write(out, "safetensors", "metadata", safetensors([("w", [1], [1.0])]).replace(b'{"w"', b'{"__metadata__": {"format": "pt"}, "w"'))
    write(out, "model-config", "llama", json.dumps({
        "model_type": "llama", "vocab_size": 256, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
        "tie_word_embeddings": True, "attention_bias": False}))
    write(out, "peft-config", "gpt2", json.dumps({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4.0,
                                                  "target_modules": ["c_attn"], "fan_in_fan_out": True, "bias": "none"}))
    alphabet = byte_level_alphabet()
    vocab = {s: i for i, s in enumerate(alphabet)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    write(out, "gpt2-vocab", "small", json.dumps(vocab, ensure_ascii=False))
    write(out, "gpt2-merges", "small", merges_txt)


if __name__ == "__main__":
    main()
