"""Reference fixtures for the engine's Llama-family tests, made with Hugging Face transformers and PEFT (the
independent reference): tiny llama / qwen2 / mistral checkpoints with seeded random weights, the float64 logits
transformers computes for a token sequence, a sharded copy of the llama checkpoint, and a PEFT LoRA adapter on
every projection with the logits it gives. Run from the repository root with the benchmark venv:

    scripts/bench-venv && .venv-bench/bin/python Tests/EngineTests/Fixtures/make_llama_fixtures.py

The outputs are committed; tests and CI never run this script.
"""
import json
import os
import shutil

import torch
from peft import LoraConfig, get_peft_model
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENS = [3, 17, 42, 5, 29, 11, 0, 46, 8]
SHAPE = dict(vocab_size=48, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def logits(model):
    with torch.no_grad():
        out = model.double()(torch.tensor([TOKENS])).logits[0]
    model.float()
    return out.flatten().tolist()


def save(name, model, extra=None, **kw):
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True, **kw)
    for f in ("generation_config.json",):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    if extra is not None:
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(extra, f)
    return d


def main():
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(**SHAPE, rope_theta=500000.0, tie_word_embeddings=False,
                                         rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                           high_freq_factor=4.0, original_max_position_embeddings=16),
                                         attn_implementation="eager")).float()
    randomize(llama, 1)
    save("llama", llama, dict(tokens=TOKENS, logits=logits(llama)))
    save("llama-sharded", llama, max_shard_size="20KB")

    qwen = Qwen2ForCausalLM(Qwen2Config(**SHAPE, rope_theta=1000000.0, tie_word_embeddings=True,
                                        rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=16),
                                        attn_implementation="eager")).float()
    randomize(qwen, 2)
    save("qwen2", qwen, dict(tokens=TOKENS, logits=logits(qwen)))

    mistral = MistralForCausalLM(MistralConfig(**SHAPE, sliding_window=4, head_dim=8, tie_word_embeddings=False,
                                               rope_scaling=dict(rope_type="linear", factor=2.0),
                                               attn_implementation="eager")).float()
    randomize(mistral, 3)
    save("mistral", mistral, dict(tokens=TOKENS, logits=logits(mistral)))

    # A PEFT adapter on every projection of the llama model, with non-zero A and B.
    peft = get_peft_model(llama, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    d = os.path.join(HERE, "llama-peft")
    shutil.rmtree(d, ignore_errors=True)
    peft.save_pretrained(d)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(dict(tokens=TOKENS, logits=logits(peft)), f)
    for f in os.listdir(d):
        if f == "README.md":
            os.remove(os.path.join(d, f))


if __name__ == "__main__":
    main()
