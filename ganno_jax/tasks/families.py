"""Task families: named presets of tasks one policy trains on together (``ganno train --task-family``).

- ``small``: the offline datasets (digits, mnist1d) x MLP / CNN-2 / CNN-3; CPU scale, no downloads.
- ``paper``: the paper's file datasets at its episode length (MNIST, Fashion-MNIST, CIFAR-10) x MLP /
  CNN-2 / CNN-3; needs ``--data-dir`` and an accelerator. CIFAR-100 and the deeper nets (CNN-5, ResNets)
  stay out, for evaluation on held-out tasks.

``HELD_OUT``: the tasks ``experiments/held_out.py`` evaluates pretrained controllers on; no family holds one
(``experiments/pretrain.py`` checks it). Offline: deeper CNN-5s of both offline datasets and ``digits28``
(the digits at MNIST's 28 x 28) on a CNN-5; with files: MNIST and Fashion-MNIST CNN-5s, CIFAR-10 CNN-5 and
CIFAR-100 CNN-3.
"""
from __future__ import annotations

FAMILIES = {
    "small": ("digits-mlp", "digits-cnn2", "digits-cnn3", "mnist1d-mlp", "mnist1d-cnn2", "mnist1d-cnn3"),
    "paper": ("mnist-mlp", "mnist-cnn2", "mnist-cnn3", "fashion_mnist-mlp", "fashion_mnist-cnn2",
              "fashion_mnist-cnn3", "cifar10-mlp", "cifar10-cnn2", "cifar10-cnn3"),
}


HELD_OUT = {
    "offline": ("digits-cnn5", "mnist1d-cnn5", "digits28-cnn5"),
    "files": ("mnist-cnn5", "fashion_mnist-cnn5", "cifar10-cnn5", "cifar100-cnn3"),
}


def held_out_tasks() -> tuple[str, ...]:
    """Every held-out task name (``HELD_OUT``'s offline and file tasks)."""
    return tuple(name for names in HELD_OUT.values() for name in names)


def family(name: str) -> tuple[str, ...]:
    """Task names of the family ``name`` (see ``FAMILIES``); ``ValueError`` naming the known families."""
    if name not in FAMILIES:
        raise ValueError(f"unknown task family {name!r}; known families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def parse_tasks(text: str) -> tuple[str, ...]:
    """``"digits-cnn2, digits-mlp"`` -> ("digits-cnn2", "digits-mlp"); ``ValueError`` for an empty list
    or a repeated name (the names themselves are checked by ``tasks.get``)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError(f"tasks={text!r} is not valid; it must name at least one task")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"tasks={text!r} is not valid; {', '.join(repeated)} repeated")
    return names
