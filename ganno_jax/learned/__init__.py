"""Learned learning-rate schedules in anyone's training loop: a GANNO controller as an optax transformation.

```python
import optax, ganno_jax.learned as learned
tx = learned.schedule(optax.adam(1e-3), learned.pretrained(), init_lr=1e-3)   # tau, horizon: the controller's
state = tx.init(params)
updates, state = tx.update(grads, state, params, train_loss=tl, train_acc=ta, val_loss=vl, val_acc=va,
                           weight_decay=0.0)
params = optax.apply_updates(params, updates)
learned.lrs(state)                                                            # [layers] current LRs
```
"""
from ganno_jax.learned.pretrained import RECOMMENDED, Controller, export, pretrained, pretrained_names
from ganno_jax.learned.schedule import (REQUIRED_METRICS, Layers, LearnedScheduleState, is_decision_step, layers_of,
                                        lrs, schedule)

__all__ = ["schedule", "lrs", "is_decision_step", "layers_of", "Layers", "LearnedScheduleState", "REQUIRED_METRICS",
           "pretrained", "pretrained_names", "RECOMMENDED", "Controller", "export"]
