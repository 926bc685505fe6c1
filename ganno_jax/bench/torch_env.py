"""Plain sequential PyTorch port of one ``LayerwiseLREnv`` env step, the reference of ``ganno bench``.

Same work as ``ganno_jax.env.LayerwiseLREnv.step_env``: the same model (Flax MLP / im2col CNN with
'SAME' padding, 2x2 max pooling, flatten, linear classifier), ``tau`` steps of per-layer-LR Adam with decoupled weight
decay (``p -= lr_layer * (m_hat / (sqrt(v_hat) + eps) + wd * p)``) on minibatches drawn with
replacement, non-finite steps not applied, then loss/accuracy on ``eval_batch`` train and validation
examples, per-layer grad/update/weight statistics and the [num_agents, 31] observation. Difference
rewards train the no-op branch too, on the same minibatches. One env at a time, as the papers' code.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Action table of ganno_jax.env.layerwise: lr * mul / div + add, then clipped to [LR_MIN, LR_MAX].
_MUL = torch.tensor([1.0, 1.01, 1.10, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
_DIV = torch.tensor([1.0, 1.0, 1.0, 1.01, 1.10, 1.0, 1.0, 1.0, 1.0])
_ADD = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 5e-4, -5e-4, 1e-3, -1e-3])
LR_MIN, LR_MAX = 0.0, 0.1
B1, B2, EPS = 0.9, 0.999, 1e-8  # optax.scale_by_adam defaults
LOSS_CAP, LOG_EPS = 100.0, 1e-8


def _flax_init_(layer: nn.Module) -> None:
    """Flax's default init: truncated-normal kernel with variance 1 / fan_in, zero bias."""
    std = math.sqrt(1.0 / layer.weight[0].numel()) / 0.87962566103423978
    nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
    nn.init.zeros_(layer.bias)


class MLP(nn.Module):
    """Flatten -> [8*width]*2 ReLU -> classes (ganno_jax.tasks.models.MLP)."""

    def __init__(self, in_features: int, num_classes: int, width: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_features, 8 * width), nn.Linear(8 * width, 8 * width),
                                     nn.Linear(8 * width, num_classes)])

    def forward(self, x):
        h = x.flatten(1)
        for layer in self.layers[:-1]:
            h = F.relu(layer(h))
        return self.layers[-1](h)


class CNN(nn.Module):
    """``depth - 1`` 3x3 'SAME' convs (ReLU, 2x2 max pool while the image is > 4 px), flatten (NHWC order), linear."""

    def __init__(self, image_hw: tuple[int, int], channels: int, num_classes: int, depth: int, width: int):
        super().__init__()
        self.convs, self.pads, self.pools = nn.ModuleList(), [], []
        size = image_hw
        for i in range(depth - 1):
            out = width * 2 ** min(i, 2)
            pads = [_same_padding(n, 3, 1) for n in size]
            self.convs.append(nn.Conv2d(channels, out, 3))
            self.pads.append((*pads[1][1:], *pads[0][1:]))  # F.pad order: (left, right, top, bottom)
            pool = max(size) > 4
            self.pools.append(tuple(2 if n > 1 else 1 for n in size) if pool else None)
            size, channels = (tuple(-(-n // 2) for n in size) if pool else size), out
        self.head = nn.Linear(size[0] * size[1] * channels, num_classes)

    def forward(self, x):
        for conv, pad, pool in zip(self.convs, self.pads, self.pools):
            x = F.relu(conv(F.pad(x, pad)))
            if pool is not None:  # 'SAME' 2x2 pooling = ceil mode (Flax pads the end, with -inf)
                x = F.max_pool2d(x, pool, pool, ceil_mode=True)
        return self.head(x.permute(0, 2, 3, 1).flatten(1))


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size and (low, high) padding of 'SAME' padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def build_model(model: str, image_shape: tuple[int, int, int], num_classes: int, width: int) -> nn.Module:
    """PyTorch twin of ``ganno_jax.tasks.build_model`` for ``mlp`` and ``cnnN``."""
    if model == "mlp":
        return MLP(math.prod(image_shape), num_classes, width)
    if model.startswith("cnn"):
        return CNN(image_shape[:2], image_shape[2], num_classes, int(model[3:]), width)
    raise ValueError(f"the PyTorch port has mlp and cnnN models only, not {model!r}")


def _log(x):
    return torch.log10(x.abs() + LOG_EPS)


def _safe_loss(loss):
    return torch.clamp(torch.nan_to_num(loss, nan=LOSS_CAP, posinf=LOSS_CAP), 0.0, LOSS_CAP)


class TorchLayerwiseEnv:
    """One GANNO env in PyTorch: ``reset()`` and ``step(actions)`` without auto-reset.

    Args:
      task: a ``ganno_jax.tasks.Task`` (model, width, batch_size, tau, eval_batch, horizon).
      data: its ``ganno_jax.data.Dataset`` (copied to torch tensors once).
      reward_mode: ``accuracy`` or ``difference``.
      seed: torch generator seed.
    """

    def __init__(self, task, data, reward_mode: str = "accuracy", seed: int = 0):
        if reward_mode not in ("accuracy", "difference"):
            raise ValueError(f"reward_mode={reward_mode!r}: the PyTorch port has accuracy and difference")
        self.task, self.reward_mode = task, reward_mode
        self.gen = torch.Generator().manual_seed(seed)
        layout = (lambda x: x) if task.model == "mlp" else (lambda x: x.permute(0, 3, 1, 2).contiguous())
        self.x_train, self.x_val = (layout(torch.from_numpy(np.array(x))) for x in (data.x_train, data.x_val))
        self.y_train, self.y_val = (torch.from_numpy(np.array(y)).long() for y in (data.y_train, data.y_val))
        self.model = build_model(task.model, tuple(data.x_train.shape[1:]), data.num_classes, task.width)
        self.params = list(self.model.parameters())
        self.agent_of = [i // 2 for i in range(len(self.params))]  # (weight, bias) per layer, in depth order
        self.num_agents = len(self.params) // 2
        kinds = [1 if isinstance(m, nn.Conv2d) else 0
                 for m in self.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        depth = [0] + [1] * (self.num_agents - 2) + [2]
        self.constants = torch.cat([torch.eye(3)[kinds], torch.eye(3)[depth]], dim=1)

    # ------------------------------------------------------------------ helpers
    def _per_agent(self, values) -> torch.Tensor:
        return torch.stack([values[2 * a] + values[2 * a + 1] for a in range(self.num_agents)])

    def _sq_norms(self, tensors) -> torch.Tensor:
        return self._per_agent([t.square().sum() for t in tensors])

    def _log_uniform(self, low: float, high: float) -> torch.Tensor:
        u = torch.rand((), generator=self.gen)
        return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))

    @torch.no_grad()
    def _measure(self):
        """(train_loss, train_acc, val_loss, val_acc) on eval_batch examples of each split."""
        out = []
        for x, y in ((self.x_train, self.y_train), (self.x_val, self.y_val)):
            if self.task.eval_batch < x.shape[0]:
                idx = torch.randperm(x.shape[0], generator=self.gen)[: self.task.eval_batch]
                x, y = x[idx], y[idx]
            logits = self.model(x)
            out += [F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()]
        return out

    def _train(self, lrs: torch.Tensor, batch_indices: torch.Tensor):
        """tau Adam steps with per-layer LRs [N]; returns (last grads, last directions, diverged)."""
        lr_leaf = [float(lrs[a]) for a in self.agent_of]
        wd, grads, direction, diverged = self.wd, None, None, False
        for idx in batch_indices:
            loss = F.cross_entropy(self.model(self.x_train[idx]), self.y_train[idx])
            grads = torch.autograd.grad(loss, self.params)
            with torch.no_grad():
                count = self.count + 1
                m = torch._foreach_mul(self.m, B1)
                torch._foreach_add_(m, grads, alpha=1 - B1)
                v = torch._foreach_mul(self.v, B2)
                torch._foreach_addcmul_(v, grads, grads, value=1 - B2)
                denom = torch._foreach_sqrt(torch._foreach_div(v, 1 - B2**count))
                torch._foreach_add_(denom, EPS)
                direction = torch._foreach_div(torch._foreach_div(m, 1 - B1**count), denom)
                step = torch._foreach_add(direction, self.params, alpha=wd)
                torch._foreach_mul_(step, lr_leaf)
                new = torch._foreach_sub(self.params, step)
                if bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p).all()) for p in new):
                    torch._foreach_copy_(self.params, new)
                    self.m, self.v, self.count = m, v, count
                else:
                    diverged = True
        return grads, direction, diverged

    def _obs(self) -> torch.Tensor:
        """[num_agents, 31] observation, encoded as ganno_jax.env.features."""
        tl, ta, vl, va = self.metrics
        tl, vl = _safe_loss(tl), _safe_loss(vl)
        glob = torch.stack([ta, va, tl, vl, torch.tensor(float(self.diverged)),
                            torch.tensor(self.steps / self.task.horizon),
                            torch.clamp(tl / vl.clamp_min(LOG_EPS), 0, 10), _log(self.init_lr), _log(self.wd)])
        with torch.no_grad():
            count = self._per_agent([torch.tensor(float(p.numel())) for p in self.params])
            mean = self._per_agent([p.sum() for p in self.params]) / count
            sq = self._sq_norms(self.params)
        w_norm, w_var = sq.sqrt(), (sq / count - mean**2).clamp_min(0.0)
        cols = [_log(self.lrs)[:, None], F.one_hot(self.prev_action, 9).float(), self.constants,
                _log(w_norm / (self.update_norm + LOG_EPS))[:, None], _log(self.grad_norm)[:, None],
                _log(self.update_norm)[:, None], mean[:, None], _log(w_var)[:, None], _log(w_norm)[:, None]]
        rows = torch.nan_to_num(torch.cat(cols, dim=1), posinf=1e3, neginf=-1e3)
        return torch.cat([glob.expand(self.num_agents, -1), rows], dim=1)

    def load_flax_params(self, params) -> None:
        """Copies a Flax parameter dict of the twin ``ganno_jax`` model (``L{i:02d}_<kind>`` entries with
        ``kernel`` [in, out] or [kh, kw, in, out] and ``bias``) into the PyTorch model."""
        for i, name in enumerate(sorted(params)):
            kernel = np.asarray(params[name]["kernel"])
            kernel = kernel.T if kernel.ndim == 2 else kernel.transpose(3, 2, 0, 1)
            with torch.no_grad():
                self.params[2 * i].copy_(torch.from_numpy(kernel.copy()))
                self.params[2 * i + 1].copy_(torch.from_numpy(np.array(params[name]["bias"])))

    # ------------------------------------------------------------------ env API
    def reset(self, params=None, init_lr: float | None = None, weight_decay: float | None = None) -> torch.Tensor:
        """New inner run: fresh network and Adam state, LR in [1e-5, 1e-2], weight decay in [1e-5, 1e-1].

        ``params`` (a Flax parameter dict, see ``load_flax_params``), ``init_lr`` and ``weight_decay``
        replace the sampled ones when given (to start from the same point as a ``LayerwiseLREnv``)."""
        for module in self.model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                _flax_init_(module)
        if params is not None:
            self.load_flax_params(params)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.count, self.steps, self.diverged = 0, 0, False
        self.init_lr, self.wd = self._log_uniform(1e-5, 1e-2), self._log_uniform(1e-5, 1e-1)
        if init_lr is not None:
            self.init_lr = torch.tensor(init_lr)
        if weight_decay is not None:
            self.wd = torch.tensor(weight_decay)
        self.lrs = torch.full((self.num_agents,), float(self.init_lr))
        self.prev_action = torch.zeros(self.num_agents, dtype=torch.long)
        self.grad_norm = self.update_norm = torch.zeros(self.num_agents)
        self.metrics = self._measure()
        return self._obs()

    def step(self, actions: torch.Tensor, batch_indices: torch.Tensor | None = None):
        """(obs [N, 31], reward [N], terminated) after tau optimiser steps with the new LRs, on minibatches
        ``batch_indices`` [tau, batch_size] of the train split (default: drawn with replacement)."""
        actions = torch.as_tensor(actions, dtype=torch.long)
        new_lrs = torch.clamp(self.lrs * _MUL[actions] / _DIV[actions] + _ADD[actions], LR_MIN, LR_MAX)
        if batch_indices is None:
            n = self.x_train.shape[0]
            batch_indices = torch.randint(0, n, (self.task.tau, self.task.batch_size), generator=self.gen)
        eval_state = self.gen.get_state()
        if self.reward_mode == "difference":  # no-op branch first, from a snapshot, same minibatches and eval examples
            snapshot = ([p.detach().clone() for p in self.params], self.m, self.v, self.count)
            self._train(self.lrs, batch_indices)
            baseline = self._measure()[3]
            with torch.no_grad():
                torch._foreach_copy_(self.params, snapshot[0])
            self.m, self.v, self.count = snapshot[1:]
            self.gen.set_state(eval_state)
        grads, direction, diverged = self._train(new_lrs, batch_indices)
        self.metrics = self._measure()
        reward = self.metrics[3] - (baseline if self.reward_mode == "difference" else 0.0)
        self.grad_norm = torch.nan_to_num(self._sq_norms(grads).sqrt())
        self.update_norm = torch.nan_to_num(self._sq_norms(direction).sqrt())
        self.lrs, self.prev_action, self.diverged, self.steps = new_lrs, actions, diverged, self.steps + 1
        return self._obs(), reward.expand(self.num_agents), self.steps >= self.task.horizon
