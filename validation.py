r"""Measure a trained architecture on a data set's test split: top-1, top-5, loss, params, FLOPs.

    python validation.py --dataset cifar10 --data DATA --model net.config --pretrained net.init \
        [--img-size R] [-b 256] [-j 4] [--save out.json]
    python validation.py --dataset cifar10 --data DATA --net_type micro --arch NSGANet --init_channels 34 \
        --filter_increment 4 --auxiliary --pretrained weights.pt
    python validation.py --net_type macro --model_path weights.pt --data DATA    # NSGA-Net's test.py flags:
    python validation.py --task cifar100 --net_type micro ... --model_path weights.pt   # CIFAR-10 unless --task

Weights: a state dict, {"state_dict": ...} (net.init, net.inherited, train_cifar.py's model.pth and
checkpoint.pth), timm checkpoints (--use-ema takes "state_dict_ema"/"model_ema"), `module.` prefixes.
Resolution: --img-size, else img_size of the training run's args.yaml beside the weights, else the
config's "image_size"/"r" (or r of a net.subnet beside net.config), else the data set's default.
Preprocessing is codebase.data.eval_transform, the same as the search and the training scripts use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from codebase.cli import (
    NSGANET_NETWORK_FLAGS,
    WORKERS,
    OneLineParser,
    add_nsganet_network_args,
    check_ranges,
    check_unused,
    flag_names,
    flags_given,
    run_main,
)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", "--task", dest="dataset", default=None,
                   help="imagenet, cifar10, cifar100, cinic10, ... (codebase/data); default: imagenet, and cifar10 "
                        "with --net_type (as NSGA-Net's validation/test.py)")
    p.add_argument("--data", help="folder holding the data set")
    p.add_argument("-m", "--model", "--model-config", "--model_config", dest="model_config",
                   help="net.config of the architecture (ofa MobileNetV3, either spelling)")
    p.add_argument("--pretrained", "--initial-checkpoint", "--model_path", dest="pretrained", required=True,
                   help="weight file")
    p.add_argument("--use-ema", "--use_ema", dest="use_ema", action="store_true",
                   help="take the EMA weights of a timm checkpoint")
    p.add_argument("--img-size", "--img_size", dest="img_size", type=int, default=None)
    p.add_argument("-b", "--batch-size", "--batch_size", dest="batch_size", type=int, default=256)
    # scoring draws no random numbers, so the loader count changes no result: at most one per CPU core (torch
    # warns about more on every run of a small machine)
    p.add_argument("-j", "--workers", "--num_workers", dest="workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="data-loading processes (default: 4, or the CPU count if smaller)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False, help="bf16 autocast")
    p.add_argument("--save", help="write the results to this JSON file")
    add_nsganet_network_args(p, "NSGA-Net networks")
    return p


def validate(args: argparse.Namespace) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from codebase.data import eval_transform, get_dataset
    from codebase.finetune import n_classes_of
    from codebase.latency.measure import resolve_device
    from codebase.models import build_nsganet_model, build_ofa_model, model_complexity, resolve_image_size
    from codebase.training import evaluate

    if bool(args.net_type) == bool(args.model_config):
        raise ValueError("give either --model net.config or --net_type micro|macro")
    if args.dataset is None:  # NSGA-Net networks are CIFAR-10 networks unless told otherwise
        args.dataset = "cifar10" if args.net_type else "imagenet"
    n_classes = n_classes_of(args.dataset, args.data)
    size = resolve_image_size(args.img_size, args.dataset, args.model_config, args.pretrained, bool(args.net_type))
    if args.net_type:
        model = build_nsganet_model(args.net_type, args.arch, args.layers, args.init_channels, args.filter_increment,
                                    args.auxiliary, args.SE, n_classes, args.pretrained, args.use_ema)
    else:
        model = build_ofa_model(args.model_config, args.pretrained, n_classes, keep_head=True, use_ema=args.use_ema)
    device = resolve_device(args.device)
    test_set = get_dataset(args.dataset, args.data, "test", eval_transform(args.dataset, size))
    loader = DataLoader(test_set, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                        pin_memory=device.type == "cuda")
    stats = evaluate(model.to(device), loader, device, amp=args.amp)
    complexity = model_complexity(model.cpu(), size, args.model_config)
    return {"top1": stats["top1"], "top5": stats["top5"], "loss": stats["loss"], "n": stats["n"],
            "params": complexity["params"], "flops": complexity["flops"], "img_size": size,
            "dataset": args.dataset}


def main(argv: list[str] | None = None) -> int:
    from codebase.io import check_output_file

    args = build_parser().parse_args(argv)
    # before the network and the data set are loaded (DataLoader said `batch_size should be a positive integer`)
    names = flag_names(build_parser())
    check_ranges(args, {"batch_size": "[1, inf)", "workers": WORKERS}, names)
    given = flags_given(build_parser, sys.argv[1:] if argv is None else argv)
    if not args.net_type:  # the NSGA-Net flags would shape nothing: refused, not silently ignored
        check_unused(given, dict.fromkeys(NSGANET_NETWORK_FLAGS, "only with --net_type (an NSGA-Net network)"), names)
    elif args.net_type == "macro":
        from codebase.nsganet_profile import warn_ignored_macro_flags

        warn_ignored_macro_flags(args.arch, given)
    if args.save:  # before the evaluation, which can take minutes
        check_output_file(args.save, "--save")
    results = validate(args)
    print(f"{args.dataset} test ({results['n']} images, {results['img_size']} px): top1 {results['top1']:.2f}%  "
          f"top5 {results['top5']:.2f}%  loss {results['loss']:.4f}  params {results['params']:.3f}M  "
          f"FLOPs {results['flops']:.2f}M")
    if args.save:
        from codebase.io import write_json

        write_json(args.save, results, indent=2)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    run_main(main)
