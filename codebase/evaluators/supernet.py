"""Real evaluation of OFA MobileNetV3 subnets with weights inherited from a supernet.

Per subnet: extract it from the supernet, re-estimate its batch-norm statistics on a fixed subset of
training images (`bn_size`, default 2,000), optionally fine-tune it for `n_epochs` (SGD, Nesterov,
cosine), then measure top-1, top-5 and the loss on the validation split: `vld_size` images held out of
the training set, the same for every run seed (codebase.data.train_validation_split, VALID_SEED). The
test set is read only with `test=True`.

Speed: the supernet is loaded once per process, the calibration and validation images are decoded once
into uint8 tensors (on the device) and resized there for each subnet's resolution; inference runs under
torch.inference_mode, in channels_last (several times faster for depthwise convolutions, on CPU too) and
with bf16 autocast on CUDA.

Supernet checkpoints: the official OFA format `{"state_dict": ...}` (either key spelling, kernel
transform matrices included) or a train_supernet.py checkpoint. A head of another class count than the
task's is replaced by a new one of `n_classes` (the body is kept); a body that does not fit the
supernet is a ValueError naming the first mismatched tensor. Without `supernet_path`, a supernet is
trained on the task first (into SAVE/supernet/checkpoint.pth, reused when complete, resumed otherwise).

Default resolutions: NSGANetV2's 192..256 step 4, except for tiny images (native size <= 16 px, i.e.
digits): 24..32 step 4 (see codebase.supernet_training.default_resolutions).
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from codebase.complexity import subnet_complexity
from codebase.data import VALID_SEED, decode_uint8_subset, uint8_to_input
from codebase.distributed import RankGroup
from codebase.io import check_yaml_text, file_identity, load_torch, save_torch, write_json, write_yaml
from codebase.latency.measure import check_measurable, objective_device, resolve_device
from codebase.supernet_training import (
    SupernetTrainConfig,
    default_resolutions,
    resized_batches,
    resolve_n_classes,
    split_indices,
    split_seed_of,
    train_supernet,
    training_set_fingerprint,
    training_subset,
    uint8_loader,
)
from search_space.ofa import OFASearchSpace

log = logging.getLogger("msunas")

HEAD_KEYS = ("classifier.linear.weight", "classifier.linear.bias")
#: epochs of the supernet trained when a run has no --supernet_path (digits: ~97% for its subnets)
AUTO_SUPERNET_EPOCHS = 20


# ---------------------------------------------------------------------- supernet checkpoints
def _checkpoint_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state_dict, train_supernet.py configuration or None for other checkpoints)."""
    ckpt = load_torch(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a supernet checkpoint (expected {{'state_dict': {{name: tensor}}}})")
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
    if config is not None and isinstance(ckpt.get("train_set"), dict):
        config = {**config, "train_set": ckpt["train_set"]}
    if config is not None and "split_seed" in ckpt:
        config = {**config, "split_seed": ckpt["split_seed"]}
    if config is not None and "epoch" in ckpt:  # epochs done, beside the config's epochs planned
        config = {**config, "epoch": ckpt["epoch"]}
    return state, config


# the `ofa` package's alternative spellings of one tensor name (older and newer module nesting)
_SPELLINGS = ((".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"), (".linear.linear.", ".linear."),
              (".linear.", ".linear.linear."), ("bn.", "bn.bn."), ("conv.weight", "conv.conv.weight"))


def _model_key(key: str, model_keys: dict[str, Any]) -> str | None:
    name = key[len("module."):] if key.startswith("module.") else key
    name = name.replace(".mobile_inverted_conv.", ".conv.")
    if name in model_keys:
        return name
    for old, new in _SPELLINGS:
        if old in name and name.replace(old, new) in model_keys:
            return name.replace(old, new)
    return None


def load_supernet_weights(supernet: nn.Module, path: str | Path) -> bool:
    """Load an OFA-format supernet checkpoint into `supernet` in place; returns True when the checkpoint's
    head had another class count and was left out (the supernet keeps its new head of n_classes)."""
    return _load_state(supernet, _checkpoint_state(path)[0], path)


def _load_state(supernet: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> bool:
    model_state = supernet.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = _model_key(key, model_state)
        if name is None:
            raise ValueError(f"{path}: tensor '{key}' is not part of an OFA MobileNetV3 supernet")
        mapped[name] = value
    new_head = False
    for name, expected in model_state.items():  # model order: the first mismatch is the earliest layer
        if name not in mapped:
            if name.endswith("num_batches_tracked"):
                continue
            raise ValueError(f"{path}: the checkpoint has no tensor '{name}' (not an OFA MobileNetV3 supernet "
                             f"with kernel sizes 3,5,7, expand ratios 3,4,6 and depths 2,3,4?)")
        got = mapped[name].shape
        if got == expected.shape:
            continue
        if name in HEAD_KEYS and got[1:] == expected.shape[1:]:
            new_head = True
            continue
        width = getattr(supernet, "width_mult", "?")
        raise ValueError(f"{path}: tensor '{name}' has shape {tuple(got)} in the checkpoint but "
                         f"{tuple(expected.shape)} in the OFA MobileNetV3 w{width} supernet (check --width_mult)")
    if new_head:
        for name in HEAD_KEYS:
            mapped.pop(name, None)
    model_state.update(mapped)
    nn.Module.load_state_dict(supernet, model_state)  # names already mapped; skip ofa's remapping
    return new_head


_SUPERNETS: dict[tuple, nn.Module] = {}
_TRAINED_WITH: dict[str, dict[str, Any] | None] = {}


def _trained_with(path: str | Path) -> dict[str, Any] | None:
    """The train_supernet.py configuration stored in a checkpoint (None for OFA's own checkpoints)."""
    return _TRAINED_WITH.get(str(Path(path).resolve()))


def load_supernet(path: str | Path, width_mult: float, n_classes: int) -> nn.Module:
    """The supernet of a checkpoint, with a head of n_classes; built and read once per process."""
    from codebase.supernet import build_supernet

    path = Path(path)
    if not path.is_file():  # a folder: likely a train_supernet.py run, whose weights are its checkpoint.pth
        if path.is_dir():
            raise ValueError(f"--supernet_path {path}: a folder, not a file; give a checkpoint in it, e.g. "
                             f"{path / 'checkpoint.pth'}")
        raise ValueError(f"--supernet_path {path}: file not found")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, float(width_mult), int(n_classes))
    if key not in _SUPERNETS:
        with torch.random.fork_rng(devices=[]):  # a new head is the same in every process and rank
            torch.manual_seed(0)
            supernet = build_supernet(width_mult, n_classes)
        state, _TRAINED_WITH[str(path.resolve())] = _checkpoint_state(path)
        supernet.new_head = _load_state(supernet, state, path)  # said by the evaluator, once it accepts it
        _SUPERNETS.clear()  # one supernet in memory at a time
        _SUPERNETS[key] = supernet.eval()
    return _SUPERNETS[key]


# ---------------------------------------------------------------------- the evaluator
def _resolution_list(resolutions: list[int] | tuple[int, ...]) -> str:
    """24, 28, 32 as "24..32 step 4"; other lists comma-separated."""
    r = sorted(int(v) for v in resolutions)
    steps = {b - a for a, b in zip(r, r[1:])}
    return f"{r[0]}..{r[-1]} step {steps.pop()}" if len(r) > 2 and len(steps) == 1 else ", ".join(map(str, r))


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def trained_resolutions(path: str | Path | None) -> list[int] | None:
    """The resolutions a train_supernet.py checkpoint was trained at (its config), read without loading the weights
    (memory-mapped); None for another checkpoint (OFA's) or an unreadable one, whose error the real load gives."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        resolutions = ckpt["config"]["resolutions"]
        return sorted({int(r) for r in resolutions}) or None
    except Exception:  # any reason: the evaluator's own load says what is wrong with the file
        return None


def planned_space(dataset: str = "digits", data: str | Path | None = None, n_classes: int | None = None,
                  width_mult: float = 1.0, resolutions: list[int] | tuple[int, ...] | None = None,
                  **_: Any) -> tuple[OFASearchSpace, int]:
    """The space and head class count a SupernetEvaluator of these options scores, known before its supernet is
    loaded or trained (which takes minutes): what a search checks its objectives against first."""
    space = OFASearchSpace(resolutions=tuple(resolutions or default_resolutions(dataset)), width_mult=float(width_mult))
    return space, resolve_n_classes(dataset, data, n_classes)


class SupernetEvaluator:
    """evaluate(subnet) -> {"top1", "top5", "loss", "params", "flops", "flops_ofa"[, "latency_cpu"/"_gpu"]}."""

    def __init__(self, dataset: str = "digits", data: str | Path | None = None, n_classes: int | None = None,
                 supernet_path: str | Path | None = None, width_mult: float = 1.0,
                 resolutions: list[int] | tuple[int, ...] | None = None, vld_size: int | None = None,
                 n_epochs: int = 0, test: bool = False, device: str | None = None, seed: int = 0,
                 save: str | Path | None = None, measure: tuple[str, ...] = (), bn_size: int = 2000,
                 batch_size: int = 200, ft_lr: float = 0.01, ft_batch_size: int = 64, num_workers: int = 0,
                 supernet_epochs: int = AUTO_SUPERNET_EPOCHS, quiet: bool = False, **_: Any) -> None:
        self.dataset, self.data = dataset, (str(data) if data is not None else None)
        self.space, self.n_classes = planned_space(dataset, data, n_classes, width_mult, resolutions)
        self.n_epochs, self.test, self.seed = int(n_epochs or 0), bool(test), int(seed or 0)
        self.measure = tuple(measure or ())
        self.batch_size, self.ft_lr, self.ft_batch_size = batch_size, ft_lr, ft_batch_size
        self.num_workers = num_workers
        self.device = resolve_device(device)
        self.amp = self.device.type == "cuda"
        if bn_size < 1 or batch_size < 1:
            raise ValueError(f"bn_size and batch_size must be positive, got {bn_size} and {batch_size}")
        if self.n_epochs < 0:
            raise ValueError(f"--n_epochs must be at least 0, got {self.n_epochs}")
        check_measurable(self.measure)

        self.train_idx, vld_idx, self.vld_size = split_indices(dataset, data, vld_size)
        given = supernet_path is not None
        if not given:  # train_supernet checks its own settings and training images before reusing one
            supernet_path = self._auto_supernet(save, supernet_epochs, quiet)
        self.supernet_path = str(supernet_path)
        self.supernet = load_supernet(supernet_path, self.space.width_mult, self.n_classes)
        # what a search records in its args.yaml: a resume refuses a checkpoint replaced since (msunas.py)
        self.supernet_identity = file_identity(supernet_path)
        if self.supernet.new_head and self.n_epochs == 0:
            raise ValueError(f"--supernet_path {supernet_path}: its classifier has another class count than the "
                             f"task's {self.n_classes}, so every subnet would be scored with an untrained head; "
                             f"fine-tune each subnet (--n_epochs 1 or more) or train a supernet for this task "
                             f"(omit --supernet_path)")
        if self.supernet.new_head:  # not before the refusal above: a refused start says one line
            log.info("supernet %s: new head of %d classes (the checkpoint's head has another class count)",
                     supernet_path, self.n_classes)
        if given:
            self._check_training_split()
            self._check_finished()
        self._warned_resolutions: set[int] = set()

        # a fixed calibration subset of the training images (never the validation ones), the same for every
        # run seed (as OFA fixes its sub-train seed): a subnet's score does not depend on the search's seed
        rng = np.random.default_rng(VALID_SEED)
        bn_idx = np.sort(rng.permutation(self.train_idx)[:bn_size])
        max_r = max(self.space.resolutions)
        images, labels = decode_uint8_subset(dataset, data, "train", bn_idx, max_resolution=max_r,
                                             num_workers=num_workers)
        self.bn_images = images.to(self.device)
        split, idx = ("test", None) if self.test else ("train", vld_idx)
        images, labels = decode_uint8_subset(dataset, data, split, idx, max_resolution=max_r,
                                             num_workers=num_workers)
        self.vld_images, self.vld_labels = images.to(self.device), labels.to(self.device)

    def _check_training_split(self) -> None:
        """Warn when a given supernet, trained by train_supernet.py on this data set, saw our validation images."""
        trained = _trained_with(self.supernet_path)
        if not trained or trained.get("dataset") != self.dataset or self.test:
            return
        held_out = (trained.get("vld_size"), split_seed_of(trained))
        if held_out != (self.vld_size, VALID_SEED):
            warnings.warn(f"{self.supernet_path} was trained holding out vld_size={held_out[0]} drawn with seed "
                          f"{held_out[1]}, but this run validates on vld_size={self.vld_size} drawn with seed "
                          f"{VALID_SEED}: it may have trained on the validation images", stacklevel=2)
        elif "train_set" in trained:
            # same split settings, but images added, removed or renamed since shift every index of the split
            now = training_set_fingerprint(self.dataset, self.data)
            then = trained["train_set"].get("n_images")
            if trained["train_set"].get("sha256") == now["sha256"]:
                return
            if then != now["n_images"]:
                counts, risk = f"{then} then, {now['n_images']} now", "the split moved, so it may have trained on"
            else:  # the same count: the split's indices are the same, the images under them are not
                counts = f"as many, {then}, but other class names, labels or file names"
                risk = "it may have trained on another data set, or on"
            warnings.warn(f"{self.supernet_path} was trained on other training images ({counts}): {risk} the "
                          f"validation images", stacklevel=2)

    def _check_finished(self) -> None:
        """Warn when a train_supernet.py checkpoint has fewer epochs done than planned (the training was stopped or
        is still running): its subnets would be scored, and exported, with partly trained weights."""
        trained = _trained_with(self.supernet_path) or {}
        done, planned = trained.get("epoch"), trained.get("epochs")
        if not isinstance(done, int) or not isinstance(planned, int) or done >= planned or _rank() != 0:
            return
        folder = Path(self.supernet_path).parent
        finish = f"; train_supernet.py --resume {folder} finishes it" if (folder / "args.yaml").is_file() else ""
        warnings.warn(f"{self.supernet_path} is an unfinished supernet ({done} of {planned} epochs trained; its "
                      f"training was stopped or is still running): the subnets scored or exported from "
                      f"it have partly trained weights{finish}", stacklevel=3)

    def _check_resolution(self, resolution: int) -> None:
        """Warn (once per resolution) when a subnet is scored at a resolution its supernet never trained at
        (a train_supernet.py checkpoint records them; OFA's own checkpoints do not). Not refused: NSGANetV2
        itself scores OFA's ImageNet supernet (trained at 128..224) at up to 256, batch norm recalibrated."""
        trained = (_trained_with(self.supernet_path) or {}).get("resolutions")
        if not trained or resolution in trained or resolution in self._warned_resolutions:
            return
        self._warned_resolutions.add(resolution)
        warnings.warn(f"scoring a subnet at resolution {resolution}, but {self.supernet_path} was trained at "
                      f"resolutions {_resolution_list(trained)} only: its accuracy there is extrapolated",
                      stacklevel=3)

    def _auto_supernet(self, save: str | Path | None, epochs: int, quiet: bool) -> Path:
        """Train (or reuse, or resume) a supernet for this task in SAVE/supernet."""
        if save is None:
            raise ValueError("no --supernet_path given (and no --save folder to train a supernet into)")
        from codebase.cli import absolute_path
        from codebase.io import holding_lock

        folder = Path(save) / "supernet"
        # absolute, as train_supernet.py stores it: a relative --data made `train_supernet.py --resume` fail elsewhere
        config = SupernetTrainConfig(dataset=self.dataset, data=absolute_path(self.data), n_classes=self.n_classes,
                                     width_mult=self.space.width_mult, resolutions=self.space.resolutions,
                                     epochs=epochs, vld_size=self.vld_size, seed=self.seed)
        dist = torch.distributed
        distributed = dist.is_available() and dist.is_initialized()
        error = None
        if _rank() == 0:
            # train_supernet reuses a finished checkpoint and resumes an unfinished one (and logs which)
            doing = "using the supernet in" if (folder / "checkpoint.pth").exists() else "training a supernet into"
            log.info("no --supernet_path: %s %s (%d epochs)", doing, folder, epochs)
            if not quiet:
                print(f"no --supernet_path: {doing} {folder} ({self.dataset}, {epochs} epochs)")
            try:
                # a train_supernet.py folder, so `train_supernet.py --resume` works on it (also after a kill):
                # settings written up front for a new folder, after the checks for an existing checkpoint
                settings = folder / "args.yaml"
                check_yaml_text(config.to_dict(), settings)  # a --data args.yaml cannot hold: before the folder
                folder.mkdir(parents=True, exist_ok=True)
                # train_supernet.py's lock: a `train_supernet.py --resume` of this folder meanwhile is refused
                with holding_lock(folder, "train_supernet"):
                    if not settings.exists() and not (folder / "checkpoint.pth").exists():
                        write_yaml(settings, config.resolved().to_dict())
                    train_supernet(config, folder, device=str(self.device), progress=not quiet,
                                   num_workers=self.num_workers)
                    if not settings.exists():
                        write_yaml(settings, config.resolved().to_dict())
            except Exception as e:
                if not distributed:
                    raise
                error = e
        if distributed:  # the other ranks load what rank 0 trained, or learn that it failed
            RankGroup(dist.get_rank(), dist.get_world_size()).share_error(error)
        return folder / "checkpoint.pth"

    # -------------------------------------------------------------- per subnet
    def _batches(self, images: torch.Tensor, labels: torch.Tensor | None,
                 resolution: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Normalised inputs at `resolution` (channels_last) in ceil(n / batch_size) batches of near-equal
        size (the cumulative batch-norm average weighs every batch equally)."""
        n = len(images)
        bounds = np.linspace(0, n, -(-n // self.batch_size) + 1).round().astype(int)
        for a, b in zip(bounds[:-1], bounds[1:]):
            x = uint8_to_input(images[a:b], self.dataset, resolution).contiguous(memory_format=torch.channels_last)
            yield x, (labels[a:b] if labels is not None else None)

    def prepare(self, subnet: dict[str, Any]) -> nn.Module:
        """The subnet extracted from the supernet, batch norm recalibrated (and fine-tuned when n_epochs > 0),
        on the device in channels_last, in eval mode."""
        from codebase.supernet import extract_subnet
        from codebase.training import recalibrate_batchnorm

        subnet = self.space.validate(subnet)
        self._check_resolution(subnet["r"])
        net = extract_subnet(self.supernet, subnet).to(self.device).to(memory_format=torch.channels_last)
        r = subnet["r"]
        recalibrate_batchnorm(net, self._batches(self.bn_images, None, r), amp=self.amp)
        if self.n_epochs > 0:
            self._fine_tune(net, r)
        return net.eval()

    def _fine_tune(self, net: nn.Module, resolution: int) -> None:
        from codebase.training import sgd_cosine, train_one_epoch

        data = training_subset(self.dataset, self.data, self.train_idx, max(self.space.resolutions))
        steps = max(1, len(data) // self.ft_batch_size)
        optimizer, scheduler = sgd_cosine(net.parameters(), self.ft_lr, self.n_epochs, steps,
                                          no_decay_bn_bias=True)
        torch.manual_seed(self.seed)
        for epoch in range(self.n_epochs):
            loader = uint8_loader(data, self.ft_batch_size, shuffle=True, seed=self.seed * 1000 + epoch,
                                  num_workers=self.num_workers, drop_last=len(data) >= self.ft_batch_size)
            batches = resized_batches(loader, self.dataset, resolution, self.device, channels_last=True)
            train_one_epoch(net, batches, optimizer, scheduler, device=self.device, amp=self.amp,
                            channels_last=True)

    def evaluate(self, subnet: dict[str, Any]) -> dict[str, Any]:
        from codebase.training import evaluate

        subnet = self.space.validate(subnet)
        net = self.prepare(subnet)
        scores = evaluate(net, self._batches(self.vld_images, self.vld_labels, subnet["r"]), self.device,
                          amp=self.amp, channels_last=True)
        stats: dict[str, Any] = {"top1": scores["top1"], "top5": scores["top5"], "loss": scores["loss"]}
        stats.update(subnet_complexity(subnet, self.space.width_mult, self.n_classes))
        for device in self.measure:
            stats[f"latency_{device}"] = self._latency(net, subnet["r"], device)
        return stats

    def _latency(self, net: nn.Module, resolution: int, device: str) -> float:
        from codebase.latency import measure_latency

        return measure_latency(net, resolution, device=objective_device(device), warmup=5, repeats=20)


# ---------------------------------------------------------------------- export
_EVALUATORS: dict[tuple, SupernetEvaluator] = {}


def _options(args: Any) -> dict[str, Any]:
    """A namespace (argparse, SimpleNamespace) or a mapping of run arguments, as a dict."""
    return dict(args) if isinstance(args, dict) else dict(vars(args))


def cached_evaluator(args: argparse.Namespace | dict[str, Any]) -> SupernetEvaluator:
    """One SupernetEvaluator per set of arguments in this process (exporting several subnets loads once), built
    by the evaluator factory as msunas builds it: a run's args.yaml names its batch sizes and workers with the
    original's flags (trn_batch_size, ...), which only the factory maps onto the evaluator's parameters."""
    from codebase.evaluators import get_evaluator

    options = {**_options(args), "measure": ()}
    key = tuple(sorted((k, repr(v)) for k, v in options.items()))
    if key not in _EVALUATORS:
        _EVALUATORS.clear()
        _EVALUATORS[key] = get_evaluator("supernet", **options)
    return _EVALUATORS[key]


def export_subnet(args: argparse.Namespace | dict[str, Any], subnet: dict[str, Any], folder: str | Path,
                  evaluator: SupernetEvaluator | None = None) -> nn.Module:
    """Write folder/net.config (ofa MobileNetV3 config) and folder/net.inherited ({"state_dict": ...}) of a
    subnet, batch norm recalibrated on the task's data (fine-tuned too when args.n_epochs > 0), prepared
    exactly as evaluate() prepares it. `args`: the run's arguments (args.yaml, or msunas's namespace).
    Returns the prepared network (on CPU, eval mode). `evaluator`: one already built for these arguments."""
    evaluator = evaluator or cached_evaluator(args)
    net = evaluator.prepare(subnet).to("cpu").to(memory_format=torch.contiguous_format)
    folder = Path(folder)
    write_json(folder / "net.config", net.config, indent=2)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_torch(folder / "net.inherited", {"state_dict": state})
    return net
