"""Peak RSS of one training step (forward, backward, AdamW step) on the real model: full fine-tuning against
LoRA with a given dropout, each in its own process so the peaks do not mix.

  python bench/lora_memory.py --batch 2 --length 256            # all three, a table
  python bench/lora_memory.py --one lora --dropout 0.05 ...       # one measurement (a child)

Trial defect 4: peft's LoRA dropout makes a dropped-out copy of each adapted layer's input and
keeps it for backward, so LoRA with dropout 0.05 cost more memory than full fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def one_step(kind: str, dropout: float, batch: int, length: int, model: str) -> dict:
    import torch

    from posttrain.config.recipe import AdapterConfig, ModelConfig
    from posttrain.model.load import load_model

    torch.manual_seed(0)
    adapter = AdapterConfig(kind=kind, dropout=dropout) if kind != "none" else AdapterConfig()
    net = load_model(ModelConfig(path=model), adapter=adapter)
    net.train()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ids = torch.randint(3, 49152, (batch, length))
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-5)
    loss = net(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()  # AdamW's two moments per trained weight: full fine-tuning's big extra
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "kind": kind,
        "dropout": dropout,
        "batch": batch,
        "length": length,
        "peak_rss_mb": round(peak / 1024),
        "after_load_mb": round(before / 1024),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--one", choices=["none", "lora"])
    p.add_argument("--dropout", type=float, default=0.0)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one_step(args.one, args.dropout, args.batch, args.length, args.model)))
        return
    rows = []
    for kind, dropout in [("none", 0.0), ("lora", 0.05), ("lora", 0.0)]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                kind,
                "--dropout",
                str(dropout),
                "--batch",
                str(args.batch),
                "--length",
                str(args.length),
                "--model",
                args.model,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| training | peak RSS MB | RSS after load MB |\n|---|---|---|")
    for r in rows:
        name = "full" if r["kind"] == "none" else f"LoRA r16, dropout {r['dropout']}"
        print(f"| {name} | {r['peak_rss_mb']} | {r['after_load_mb']} |")


if __name__ == "__main__":
    main()
