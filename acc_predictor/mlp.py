"""A small PyTorch multi-layer perceptron with input normalisation and early stopping.

A random `val_fraction` of the training points is held out; training stops when the held-out
error has not improved for `patience` epochs and the best weights are kept. All randomness (the
split, the initial weights) comes from `seed`, inside a forked RNG so the caller's torch state is
untouched: the same seed and data give the same model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from acc_predictor.base import Predictor


class MLP(Predictor):
    name = "mlp"

    def __init__(
        self,
        search_space: Any = None,
        encoding: str = "int",
        seed: int = 0,
        hidden: tuple[int, ...] = (128, 128),
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        max_epochs: int = 2000,
        patience: int = 100,
        val_fraction: float = 0.2,
    ) -> None:
        super().__init__(search_space, encoding, seed)
        if not 0 < val_fraction < 1:
            raise ValueError(f"mlp: val_fraction must lie in (0, 1), got {val_fraction}")
        self.hidden, self.lr, self.weight_decay = tuple(int(h) for h in hidden), float(lr), float(weight_decay)
        self.max_epochs, self.patience, self.val_fraction = int(max_epochs), int(patience), float(val_fraction)

    def _fit(self, F: np.ndarray, y: np.ndarray) -> None:
        self.x_mean, self.x_std = F.mean(axis=0), F.std(axis=0)
        self.x_std[self.x_std == 0] = 1.0  # constant columns stay zero after centring
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
        self.constant = float(y[0]) if np.ptp(y) == 0 else None  # nothing to learn: predict it, not init noise
        if self.constant is not None:
            return
        Z = torch.as_tensor((F - self.x_mean) / self.x_std, dtype=torch.float32)
        t = torch.as_tensor((y - self.y_mean) / self.y_std, dtype=torch.float32)[:, None]

        order = np.random.default_rng(self.seed).permutation(len(F))
        # at least one point to train on (a large val_fraction held them all out: an empty training set)
        n_val = min(max(1, int(round(self.val_fraction * len(F)))), len(F) - 1) if len(F) >= 5 else 0
        val, train = order[:n_val], order[n_val:]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = _network(F.shape[1], self.hidden)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best, best_state, since_best = float("inf"), None, 0
        for _ in range(self.max_epochs):
            self.net.train()
            opt.zero_grad()
            loss = nn.functional.mse_loss(self.net(Z[train]), t[train])
            loss.backward()
            opt.step()
            if n_val == 0:
                continue
            self.net.eval()
            with torch.no_grad():
                val_loss = float(nn.functional.mse_loss(self.net(Z[val]), t[val]))
            if val_loss < best - 1e-7:
                best, since_best = val_loss, 0
                best_state = {k: v.clone() for k, v in self.net.state_dict().items()}
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()

    def _predict(self, F: np.ndarray) -> np.ndarray:
        if self.constant is not None:
            return np.full(len(F), self.constant)
        Z = torch.as_tensor((F - self.x_mean) / self.x_std, dtype=torch.float32)
        with torch.no_grad():
            out = self.net(Z)[:, 0].double().numpy()
        return out * self.y_std + self.y_mean


def _network(n_in: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    layers.append(nn.Linear(n_in, 1))
    return nn.Sequential(*layers)
