"""Peer baselines for `fi bench engine`, measured in the same run (never used by tests or CI). Needs the benchmark
venv (scripts/bench-venv). Prints one JSON object on stdout.

  torch-lora: LoRA fine-tuning tokens/s of Hugging Face transformers + PEFT in PyTorch (fp32, CPU, N threads) on the
              same shape, batch, sequence, targets and rank as the engine row.
  llamacpp-generate: llama.cpp (llama-cpp-python) greedy generation tokens/s of a GPT-2-small-shaped GGUF with seeded
              random weights, F32 / Q8_0 / Q4_0, the same prompt length, new tokens and threads as the engine row.
"""
import argparse
import json
import os
import sys
import time


def torch_lora(a):
    import torch
    from peft import LoraConfig, get_peft_model
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    shape = json.loads(a.shape)
    if shape["architecture"] == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = GPT2Config(vocab_size=shape["vocab"], n_positions=shape["context"], n_embd=shape["width"], n_layer=shape["layers"],
                         n_head=shape["heads"], resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, attn_implementation="sdpa")
        model = GPT2LMHeadModel(cfg)
    else:
        from transformers import LlamaConfig, LlamaForCausalLM
        cfg = LlamaConfig(vocab_size=shape["vocab"], hidden_size=shape["width"], intermediate_size=shape["mlp"],
                          num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                          num_key_value_heads=shape["kv_heads"], max_position_embeddings=shape["context"],
                          tie_word_embeddings=shape["tied"], attn_implementation="sdpa")
        model = LlamaForCausalLM(cfg)
    model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0, target_modules=a.targets.split(","),
                                             fan_in_fan_out=shape["architecture"] == "gpt2"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, shape["vocab"], (a.batch, a.seq + 1), generator=g)

    def step():
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    s = time.perf_counter() - t0
    print(json.dumps({"tokens_per_second": a.steps * a.batch * a.seq / s, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


def gguf_gpt2(path, quant, seed):
    """A GPT-2-small-shaped GGUF (12 × 768, vocabulary 50,257) with seeded random weights, F32 or quantized."""
    import numpy as np
    import gguf
    f32 = path + ".f32.gguf"
    if not os.path.exists(f32):
        rng = np.random.default_rng(seed)
        L, C, V, T = 12, 768, 50257, 1024
        w = gguf.GGUFWriter(f32, "gpt2")
        w.add_context_length(T); w.add_embedding_length(C); w.add_feed_forward_length(4 * C); w.add_block_count(L)
        w.add_head_count(12); w.add_layer_norm_eps(1e-5); w.add_file_type(0)
        # A GPT-2-style vocabulary of the right size (the byte symbols, then placeholders): ids go in directly.
        bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        chars = {b: chr(b) for b in bs}
        n = 0
        for b in range(256):
            if b not in chars:
                chars[b] = chr(256 + n); n += 1
        tokens = [chars[b] for b in range(256)] + ["Ġt"] + [f"<tok{i}>" for i in range(257, V)]
        w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("gpt-2")
        w.add_token_list(tokens); w.add_token_types([1] * V); w.add_token_merges(["Ġ t"])
        w.add_eos_token_id(V - 1); w.add_bos_token_id(V - 1)

        def t(name, shape, std=0.02, fill=None):
            a = np.full(shape, fill, dtype=np.float32) if fill is not None else (rng.standard_normal(shape, dtype=np.float32) * std)
            w.add_tensor(name, a)
        t("token_embd.weight", (V, C)); t("position_embd.weight", (T, C), 0.01)
        for l in range(L):
            p = f"blk.{l}."
            t(p + "attn_norm.weight", (C,), fill=1); t(p + "attn_norm.bias", (C,), fill=0)
            t(p + "attn_qkv.weight", (3 * C, C)); t(p + "attn_qkv.bias", (3 * C,), fill=0)
            t(p + "attn_output.weight", (C, C)); t(p + "attn_output.bias", (C,), fill=0)
            t(p + "ffn_norm.weight", (C,), fill=1); t(p + "ffn_norm.bias", (C,), fill=0)
            t(p + "ffn_up.weight", (4 * C, C)); t(p + "ffn_up.bias", (4 * C,), fill=0)
            t(p + "ffn_down.weight", (C, 4 * C)); t(p + "ffn_down.bias", (C,), fill=0)
        t("output_norm.weight", (C,), fill=1); t("output_norm.bias", (C,), fill=0)
        t("output.weight", (V, C))
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    if quant == "f32":
        return f32
    out = path + f".{quant}.gguf"
    if not os.path.exists(out):
        import llama_cpp
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}[quant]
        params.nthread = 2
        if llama_cpp.llama_model_quantize(f32.encode(), out.encode(), params) != 0:
            sys.exit(f"llama_model_quantize failed for {quant}")
    return out


def llamacpp_generate(a):
    import llama_cpp
    path = gguf_gpt2(os.path.join(a.cache, "gpt2-small-random"), a.quant, 1)
    llm = llama_cpp.Llama(model_path=path, n_threads=a.threads, n_threads_batch=a.threads, n_ctx=128, n_batch=64,
                          verbose=False, logits_all=False)
    prompt = [(i * 7919) % 50257 for i in range(a.prompt)]
    best = 0.0
    for _ in range(a.repeats):
        llm.reset()
        t0 = time.perf_counter()
        n = 0
        for tok in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            n += 1
            if n == a.new:
                break
        best = max(best, n / (time.perf_counter() - t0))
    print(json.dumps({"tokens_per_second": best, "threads": a.threads, "quant": a.quant, "llama_cpp": llama_cpp.__version__}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("torch-lora")
    t.add_argument("--shape", required=True); t.add_argument("--batch", type=int, required=True); t.add_argument("--seq", type=int, required=True)
    t.add_argument("--steps", type=int, default=3); t.add_argument("--rank", type=int, default=8); t.add_argument("--targets", required=True)
    t.add_argument("--threads", type=int, default=2)
    g = sub.add_parser("llamacpp-generate")
    g.add_argument("--quant", choices=["f32", "q8_0", "q4_0"], required=True); g.add_argument("--prompt", type=int, default=16)
    g.add_argument("--new", type=int, default=32); g.add_argument("--threads", type=int, default=2)
    g.add_argument("--repeats", type=int, default=3); g.add_argument("--cache", default=".build/bench")
    a = p.parse_args()
    if a.cmd == "torch-lora":
        torch_lora(a)
    else:
        os.makedirs(a.cache, exist_ok=True)
        llamacpp_generate(a)


if __name__ == "__main__":
    main()
