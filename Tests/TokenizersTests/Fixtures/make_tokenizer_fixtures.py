"""Hugging Face tokenizer.json fixtures and the ids the `tokenizers` library (the reference) gives for them.

Two byte-level BPE tokenizers trained here on the GPL text Debian ships (no downloads):
- llama3-style.json: Llama 3's Split pre-tokenizer pattern (Isolated) + ByteLevel without its own regex,
  ignore_merges, added special tokens (chat template markers);
- smollm-style.json: NFC normalizer, Digits(individual_digits) + ByteLevel with GPT-2's regex.
expected.json holds, per tokenizer, each sample's ids (encode without adding special tokens) and its decoding.
Run from the repository root: scripts/bench-venv && .venv-bench/bin/python Tests/TokenizersTests/Fixtures/make_tokenizer_fixtures.py
The outputs are committed; tests and CI never run this script.
"""
import json
import os

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
SAMPLES = [
    "Hello, world! Federated learning at the edge.",
    "Grüße aus München — naïve café, ÆØÅ and Ελληνικά.",
    "中文分词测试，日本語のテキスト、한국어 문장.",
    "العربية من اليمين إلى اليسار و עברית",
    "emoji 👩‍👩‍👧 flags 🇩🇪 and e\u0301 (combining) vs é",
    "digits 12345 and 3.14159, 2026-12-06, 1,000,000",
    "whitespace   runs\t\ttabs\n\n\n  and   trailing   ",
    "Don't shout: I'LL see what we'VE got; it's fine",
    "<|begin_of_text|><|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|><|end_of_text|>",
    "<|im_start|> spaced <|im_end|>x<|im_start|",
]


def corpus():
    text = open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read()
    return [text, "\n".join(SAMPLES)] * 2


def train(tok, vocab_size):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    tok.decoder = decoders.ByteLevel()
    return tok


def llama3_style():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    return train(tok, 700)


def smollm_style():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    return train(tok, 600)


def main():
    expected = {}
    for name, tok in [("llama3-style", llama3_style()), ("smollm-style", smollm_style())]:
        tok.save(os.path.join(HERE, name + ".json"))
        tok = Tokenizer.from_file(os.path.join(HERE, name + ".json"))
        expected[name] = [dict(text=s, ids=tok.encode(s, add_special_tokens=False).ids,
                               decoded=tok.decode(tok.encode(s, add_special_tokens=False).ids, skip_special_tokens=False))
                          for s in SAMPLES]
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
