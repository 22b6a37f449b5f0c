"""Benchmark: the supernet evaluator against the original tool's way of evaluating subnets.

    OMP_NUM_THREADS=1 python scripts/bench_evaluator.py [--supernet_path CKPT] [--n 20] [--out bench.json]

Both score the same `n` random subnets of the OFA space on the same data (digits: batch norm recalibrated
on the same training images in the same batches, scored on the same held-out validation images):
- original: a fresh Python process per subnet that rebuilds the supernet, reads its checkpoint and reads
  the images through DataLoaders with PIL transforms (what NSGANetV2's evaluator did for each subnet);
- ours: one SupernetEvaluator in this process (supernet loaded once, images decoded once as uint8 and
  resized as tensors, channels_last, inference_mode).
Prints the wall time of each, the speed-up and the largest top-1 difference (target: >= 5x, <= 0.1 points).

No pretrained digits supernet ships with the toolkit: pass one from train_supernet.py (or a run's
SAVE/supernet/checkpoint.pth); without --supernet_path a randomly initialised supernet is written to a
temporary file (the timings do not depend on the weights; the accuracies are then near chance).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from codebase.cli import OneLineParser  # noqa: E402


def original_one(options: dict) -> dict:
    """One subnet the original way (runs in its own process): rebuild, reload, PIL DataLoaders."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Subset

    from codebase.data import eval_transform, get_dataset, train_validation_split
    from codebase.evaluators.supernet import load_supernet_weights
    from codebase.supernet import build_supernet, extract_subnet
    from codebase.training import evaluate, recalibrate_batchnorm

    subnet, dataset, r = options["subnet"], options["dataset"], options["subnet"]["r"]
    supernet = build_supernet(options["width_mult"], options["n_classes"])
    load_supernet_weights(supernet, options["supernet_path"])
    net = extract_subnet(supernet, subnet)
    train = get_dataset(dataset, options["data"], "train", transform=eval_transform(dataset, r))
    n_train = len(train)
    train_idx, vld_idx = train_validation_split(n_train, options["vld_size"])
    bn_idx = np.sort(np.random.default_rng(options["seed"]).permutation(train_idx)[:options["bn_size"]])

    def batches(n: int) -> list[list[int]]:  # the evaluator's near-equal batches
        bounds = np.linspace(0, n, -(-n // options["batch_size"]) + 1).round().astype(int)
        return [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]

    bn_loader = DataLoader(Subset(train, bn_idx.tolist()), batch_sampler=batches(len(bn_idx)))
    recalibrate_batchnorm(net, bn_loader)
    vld_loader = DataLoader(Subset(train, vld_idx.tolist()), batch_sampler=batches(len(vld_idx)))
    scores = evaluate(net, vld_loader, torch.device("cpu"))
    return {"top1": scores["top1"], "top5": scores["top5"], "loss": scores["loss"]}


def main() -> int:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet_path", help="supernet checkpoint (default: a random one in a temporary file)")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data", default=None)
    p.add_argument("--n", type=int, default=20, help="subnets to evaluate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the results here (JSON)")
    p.add_argument("--original-one", dest="original_one", help=argparse.SUPPRESS)  # internal: one subnet
    args = p.parse_args()
    if args.original_one:
        print(json.dumps(original_one(json.loads(args.original_one))))
        return 0

    import numpy as np
    import torch

    from codebase.evaluators.supernet import SupernetEvaluator
    from codebase.supernet import build_supernet

    tmp = tempfile.TemporaryDirectory()
    path = args.supernet_path
    if path is None:
        torch.manual_seed(args.seed)
        path = str(Path(tmp.name) / "random_supernet.pth")
        torch.save({"state_dict": build_supernet(1.0, 10).state_dict()}, path)

    start = time.perf_counter()
    evaluator = SupernetEvaluator(dataset=args.dataset, data=args.data, supernet_path=path, seed=args.seed,
                                  device="cpu")
    subnets = [evaluator.space.decode(x) for x in evaluator.space.sample(args.n, np.random.default_rng(args.seed))]
    ours = [evaluator.evaluate(s) for s in subnets]
    ours_s = time.perf_counter() - start

    common = {"dataset": args.dataset, "data": args.data, "supernet_path": path, "seed": args.seed,
              "width_mult": evaluator.space.width_mult, "n_classes": evaluator.n_classes,
              "vld_size": evaluator.vld_size, "bn_size": len(evaluator.bn_images), "batch_size": evaluator.batch_size}
    start = time.perf_counter()
    original = []
    for subnet in subnets:
        out = subprocess.run([sys.executable, __file__, "--original-one", json.dumps({**common, "subnet": subnet})],
                             capture_output=True, text=True, check=True)
        original.append(json.loads(out.stdout.strip().splitlines()[-1]))
    original_s = time.perf_counter() - start

    diffs = [abs(a["top1"] - b["top1"]) for a, b in zip(ours, original)]
    result = {
        "subnets": args.n, "dataset": args.dataset, "supernet": args.supernet_path or "random init",
        "threads": torch.get_num_threads(), "vld_images": evaluator.vld_size, "bn_images": common["bn_size"],
        "original_s": round(original_s, 2), "ours_s": round(ours_s, 2), "speedup": round(original_s / ours_s, 2),
        "max_top1_diff": max(diffs), "mean_top1_ours": float(np.mean([s["top1"] for s in ours])),
        "mean_top1_original": float(np.mean([s["top1"] for s in original])),
        "top1": [[round(a["top1"], 3), round(b["top1"], 3)] for a, b in zip(ours, original)],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        from codebase.io import write_json

        write_json(args.out, result, indent=2)
    ok = result["speedup"] >= 5 and result["max_top1_diff"] <= 0.1
    print(f"original {original_s:.1f} s, ours {ours_s:.1f} s: {result['speedup']:.1f}x faster; "
          f"largest top-1 difference {result['max_top1_diff']:.3f} points -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
