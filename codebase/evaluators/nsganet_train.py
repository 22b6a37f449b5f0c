"""NSGA-Net's evaluator: train each candidate from scratch for a few epochs, score it on held-out images.

    msunas.py --search_space nsganet_micro --init_channels 16 --layers 8 --epochs 20 --dataset cifar10 --data D
    msunas.py --search_space nsganet_macro --init_channels 32 --epochs 25 --dataset cifar10 --data D

The candidate trains on the training split minus `vld_size` seeded images and is scored on those
(never on the test set). Its search-time network (the plain CIFAR network for micro, C/2C/4C widths
for macro, no auxiliary head, 32x32 inputs) is the one `space.build_network(x, **network_options)`
builds, so the "params"/"flops" it reports are exactly what the search's complexity objectives compute:
`space` here is the search space bound to those network options (see ConfiguredSpace).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from search_space import get_search_space

SEARCH_DEFAULTS = {  # NSGA-Net's search settings
    "nsganet_micro": {"init_channels": 16, "layers": 8, "epochs": 20},
    "nsganet_macro": {"init_channels": 32, "epochs": 25},
}
IMAGE_SIZE = 32


class ConfiguredSpace:
    """A search space whose networks, and so whose complexity, use fixed network options
    (init_channels, layers, n_classes): what the search counts is what the evaluator trains."""

    def __init__(self, space: Any, **network_options: Any) -> None:
        self.base = space
        self.network_options = network_options

    def __getattr__(self, name: str) -> Any:  # everything else (genomes, encode/decode) is the base space's
        # copy and pickle look attributes up before __init__ ran: without `base`, forwarding would recurse
        if name == "base" or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        return getattr(self.base, name)

    def build_network(self, x: np.ndarray, **options: Any) -> torch.nn.Module:
        return self.base.build_network(x, **{**self.network_options, **options})

    def complexity(self, X: np.ndarray, **options: Any) -> np.ndarray:
        return self.base.complexity(X, **{**self.network_options, **options})


class NSGANetTrainer:
    def __init__(self, search_space: str = "nsganet_micro", dataset: str = "cifar10", data: str | None = None,
                 init_channels: int | None = None, layers: int | None = None, epochs: int | None = None,
                 vld_size: int | None = None, n_classes: int | None = None, device: str | None = None,
                 seed: int = 0, batch_size: int = 128, lr: float = 0.025, workers: int = 0,
                 measure: tuple[str, ...] = (), **_: Any) -> None:
        from codebase.latency.measure import check_measurable, resolve_device
        from codebase.supernet_training import resolve_n_classes

        if search_space not in SEARCH_DEFAULTS:
            raise ValueError(f"--evaluator nsganet_train trains NSGA-Net networks; --search_space must be one of "
                             f"{sorted(SEARCH_DEFAULTS)} (NSGA-Net's micro, macro), got '{search_space}'")
        defaults = SEARCH_DEFAULTS[search_space]
        # 0 is a value (refused by the network's checks), not "not given": `x or default` trained the default
        self.n_classes = resolve_n_classes(dataset, data, n_classes)  # < 2, or below the task's classes: refused
        options: dict[str, Any] = {"init_channels": int(defaults["init_channels"] if init_channels is None
                                                        else init_channels), "n_classes": self.n_classes}
        if "layers" in defaults:
            options["layers"] = int(defaults["layers"] if layers is None else layers)
        elif layers is not None:
            raise ValueError("--layers applies to nsganet_micro only (macro networks have one phase per stage)")
        self.space = ConfiguredSpace(get_search_space(search_space), **options)
        self.epochs = int(defaults["epochs"] if epochs is None else epochs)
        if self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1 to train a candidate, got {self.epochs}")
        self.dataset, self.data, self.seed = dataset, data, int(seed)
        self.batch_size, self.lr, self.workers = int(batch_size), float(lr), int(workers)
        self.device = resolve_device(device)  # a bad or absent device: one line now, not a failure per candidate
        self.requested_vld_size = vld_size
        self.measure = tuple(measure or ())
        check_measurable(self.measure)  # before hours of training, not after them
        self.space.build_network(self.space.xl)  # bad network options fail here, not once per candidate
        self._splits: tuple[Subset, Subset] | None = None
        self.splits()  # a missing data set or a bad vld_size is said before the first file of the run

    @property
    def network_options(self) -> dict[str, Any]:
        return dict(self.space.network_options)

    @property
    def vld_size(self) -> int:
        """The number of held-out training images candidates are scored on (default: a tenth of them)."""
        return len(self.splits()[1])

    def splits(self) -> tuple[Subset, Subset]:
        """(training images, held-out validation images) of the training split, augmented / eval transform."""
        if self._splits is None:
            from codebase.data import eval_transform, get_dataset, train_transform, train_validation_split

            train = get_dataset(self.dataset, self.data, "train", train_transform(self.dataset, IMAGE_SIZE))
            held = get_dataset(self.dataset, self.data, "train", eval_transform(self.dataset, IMAGE_SIZE))
            vld_size = max(1, len(train) // 10) if self.requested_vld_size is None else self.requested_vld_size
            train_idx, vld_idx = train_validation_split(len(train), vld_size)  # fixed, whatever the run's seed
            self._splits = Subset(train, train_idx.tolist()), Subset(held, vld_idx.tolist())
        return self._splits

    def evaluate(self, genome_or_arch: Any) -> dict[str, Any]:
        from codebase.latency import measure_latency, objective_device
        from codebase.training import evaluate, sgd_cosine, train_one_epoch

        x = self._genome(genome_or_arch)
        train_set, vld_set = self.splits()
        torch.manual_seed(self.seed)  # every candidate starts from the same random stream
        net = self.space.build_network(x).to(self.device)
        loader = DataLoader(train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.workers,
                            drop_last=len(train_set) > self.batch_size,
                            generator=torch.Generator().manual_seed(self.seed))
        optimizer, scheduler = sgd_cosine(net.parameters(), self.lr, self.epochs, len(loader), momentum=0.9,
                                          weight_decay=3e-4, nesterov=False)
        amp = self.device.type == "cuda"
        for _ in range(self.epochs):
            train = train_one_epoch(net, loader, optimizer, scheduler, self.device, grad_clip=5.0, amp=amp)
        vld = evaluate(net, DataLoader(vld_set, batch_size=256, num_workers=self.workers), self.device, amp=amp)
        params, flops = self.space.complexity(x[None])[0]
        stats = {"top1": vld["top1"], "top5": vld["top5"], "loss": vld["loss"], "params": float(params),
                 "flops": float(flops), "train_loss": train["loss"], "train_top1": train["top1"],
                 "epochs": self.epochs, "n_vld": vld["n"]}
        for name in self.measure:  # `--sec_obj cpu` / `gpu`: the trained network, one 32x32 image
            stats[f"latency_{name}"] = measure_latency(net.eval(), IMAGE_SIZE, device=objective_device(name),
                                                       warmup=5, repeats=20)
        return stats

    def _genome(self, genome_or_arch: Any) -> np.ndarray:
        if isinstance(genome_or_arch, np.ndarray) or (
                isinstance(genome_or_arch, list) and all(isinstance(g, (int, np.integer)) for g in genome_or_arch)):
            return np.asarray(genome_or_arch, dtype=int)
        return np.asarray(self.space.encode(genome_or_arch), dtype=int)
