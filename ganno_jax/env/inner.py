"""The inner training run: pure functions that train one network of a task with per-layer LRs.

Shared by ``LayerwiseLREnv``, ``GlobalLREnv``, the baselines and evaluation, so every method is
trained by the same code. Per-layer learning rates are *data*: the update rule of the task's optimiser
(``tasks.optimizer_rule(task.optimizer, task.weight_decay_mode)``, see ``tasks/update_rules.py``) moves
each layer by its LR, gathered from a ``[num_agents]`` array, times that optimiser's step (for Adam:
``-lr[agent] * u`` with ``u`` from ``scale_by_adam``; the decay per ``task.weight_decay_mode``); the weight
decay may be per agent too (``[num_agents]``, gathered like the LRs: joint LR + weight-decay control); the
``||g||`` statistic is always the loss gradient's. So runs with different LRs vmap and nothing recompiles
when an LR changes.

The trainer is built from what the task *is* (model, optimiser, the dataset's example shape and classes
from ``data.spec``) and holds no data: every function that reads examples takes the ``Dataset`` as its
first argument (the env passes ``EnvParams.data``), so inside ``jit`` the dataset is an input of the
program, never a constant embedded in it.

Divergence: a step whose minibatch loss is not finite, or whose new parameters are not finite or
exploded (their squared norm overflows float32, |theta| beyond ~1e19), is *not applied* (parameters
and optimiser state keep their previous values) and sets the ``diverged`` flag.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

from ganno_jax.data import Dataset, spec
from ganno_jax.env import features
from ganno_jax.tasks.config import Task
from ganno_jax.tasks.models import agent_layers, build_model, init_params, leaf_agents
from ganno_jax.tasks.optimizers import optimizer_rule
from ganno_jax.tasks.update_rules import DirectionRule


@struct.dataclass
class InnerState:
    """Network parameters and optimiser state of one inner run."""

    params: dict
    opt_state: optax.OptState


@struct.dataclass
class SegmentStats:
    """Statistics of a segment of optimiser steps (per agent arrays are [num_agents])."""

    grad_norm: jax.Array  # ||g_l|| at the last step, [num_agents]
    update_norm: jax.Array  # ||u_l|| of the rule's step at the last step (see update_rules), [N]
    train_loss: jax.Array  # mean finite minibatch loss over the segment, scalar
    diverged: jax.Array  # bool scalar: some step had a non-finite loss or update


@struct.dataclass
class Metrics:
    """Loss and accuracy on the train and validation splits (scalars)."""

    train_loss: jax.Array
    train_acc: jax.Array
    val_loss: jax.Array
    val_acc: jax.Array


class InnerTrainer:
    """Builds the pure functions of a task's inner training run.

    Args:
      task: the ``Task`` (its dataset's shape comes from ``data.spec``; nothing is loaded).
      direction: optax transform giving the update direction before the learning rate, instead of the
        task's optimiser; its weight decay follows ``task.weight_decay_mode``.
      rule: an update rule (``tasks.update_rules``) instead of the task's optimiser's
        (``tasks.optimizer_rule(task.optimizer, task.weight_decay_mode)``, the default).
    """

    def __init__(self, task: Task, direction: Optional[optax.GradientTransformation] = None, rule=None):
        if direction is not None and rule is not None:
            raise ValueError("give InnerTrainer a direction or a rule, not both")
        self.task = task
        self.input_shape, self.num_classes = spec(task.dataset, task.data_dir)
        self.module = build_model(task.model, self.num_classes, task.width)
        shapes = jax.eval_shape(lambda k: init_params(self.module, k, self.input_shape), jax.random.key(0))
        self.layers = agent_layers(shapes, task.model)
        self.num_agents = len(self.layers)
        self._leaf_agent = leaf_agents(shapes)
        self.groups = features.leaf_groups(self._leaf_agent)  # each agent's leaves, as env/features.py takes them
        if rule is None:
            rule = (optimizer_rule(task.optimizer, task.weight_decay_mode) if direction is None
                    else DirectionRule(direction, task.weight_decay_mode))
        self.rule = rule

    # ----------------------------------------------------------------- building blocks
    def init(self, key: jax.Array, init_lr=None) -> InnerState:
        """Fresh network parameters and optimiser state of a run starting at ``init_lr`` (scalar; only
        rules that own their step size need it)."""
        params = init_params(self.module, key, self.input_shape)
        return InnerState(params, self.rule.init(params, init_lr))

    def eval_params(self, state: InnerState):
        """Parameters at which the model of ``state`` is measured (schedule-free: the averaged iterate)."""
        return self.rule.eval_params(state.params, state.opt_state)

    def loss_and_accuracy(self, params, x: jax.Array, y: jax.Array):
        """Mean cross-entropy and accuracy of ``params`` on x [B, H, W, C], y [B] (scalars)."""
        logits = self.module.apply({"params": params}, x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        correct = jnp.sum((logits.argmax(-1) == y).astype(jnp.int32))
        return loss, correct / y.shape[0]

    def squared_norms(self, tree) -> jax.Array:
        """Per-agent squared L2 norm of a parameter-shaped tree, [num_agents]."""
        return features.squared_norms(tree, self.groups)

    def sample_batch_indices(self, data: Dataset, key: jax.Array, steps: int) -> jax.Array:
        """Minibatch indices drawn with replacement from ``data``'s train split, [steps, batch_size]."""
        n = data.x_train.shape[0]
        return jax.random.randint(key, (steps, self.task.batch_size), 0, n)

    # ----------------------------------------------------------------- training
    def train(self, data: Dataset, state: InnerState, lrs: jax.Array, weight_decay, key: jax.Array,
              batch_indices: Optional[jax.Array] = None):
        """Runs ``T`` optimiser steps in ``lax.scan``.

        Args:
          data: the ``Dataset`` whose train split the minibatches come from.
          state: ``InnerState`` at the start of the segment.
          lrs: per-step, per-agent learning rates [T, num_agents].
          weight_decay: weight decay, a scalar or per agent [num_agents] (may be traced), applied as the
            rule's mode says (rules without ``per_layer_wd`` take agent 0's).
          key: PRNG key for minibatch sampling (ignored when ``batch_indices`` is given).
          batch_indices: optional [T, batch_size] train-split indices (e.g. an epoch's permutation).
        Returns:
          (new ``InnerState``, ``SegmentStats``).
        """
        steps = lrs.shape[0]
        if batch_indices is None:
            batch_indices = self.sample_batch_indices(data, key, steps)
        wd = jnp.broadcast_to(jnp.asarray(weight_decay, jnp.float32), (self.num_agents,))
        wd_leaves = jax.tree.map(lambda a: wd[a], self._leaf_agent)

        def one_step(carry, inputs):
            st, _, _, loss_sum, finite_steps, diverged = carry
            step_lrs, idx = inputs
            x, y = data.x_train[idx], data.y_train[idx]
            (loss, _), grads = jax.value_and_grad(self.loss_and_accuracy, has_aux=True)(st.params, x, y)
            lr_leaves = jax.tree.map(lambda a: step_lrs[a], self._leaf_agent)
            params, opt_state, direction = self.rule.apply(grads, st.opt_state, st.params, lr_leaves, wd_leaves)
            # a finite but exploded step (e.g. LR 1e38) is divergence too: ||theta||^2 overflows float32
            finite = jnp.isfinite(loss) & jnp.isfinite(sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params)))
            new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), InnerState(params, opt_state), st)
            carry = (new, grads, direction, loss_sum + jnp.where(finite, loss, 0.0), finite_steps + finite,
                     diverged | ~finite)
            return carry, None

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        init = (state, zeros, zeros, jnp.float32(0.0), jnp.int32(0), jnp.bool_(False))
        (state, grads, direction, loss_sum, finite_steps, diverged), _ = jax.lax.scan(
            one_step, init, (lrs, batch_indices))
        g_norm = jnp.nan_to_num(jnp.sqrt(self.squared_norms(grads)))
        u_norm = jnp.nan_to_num(jnp.sqrt(self.squared_norms(direction)))
        mean_loss = jnp.where(finite_steps > 0, loss_sum / jnp.maximum(finite_steps, 1), jnp.inf)
        return state, SegmentStats(g_norm, u_norm, mean_loss, diverged)

    # ----------------------------------------------------------------- measuring
    def _split_metrics(self, params, x, y, key, size: int):
        """Loss/accuracy on ``size`` random examples of a split (the whole split if smaller)."""
        n = x.shape[0]
        if size < n:
            idx = jax.random.choice(key, n, (size,), replace=False)
            x, y = x[idx], y[idx]
        return self.loss_and_accuracy(params, x, y)

    def measure(self, data: Dataset, params, key: jax.Array) -> Metrics:
        """Train and validation metrics on ``task.eval_batch`` examples each of ``data``."""
        k_train, k_val = jax.random.split(key)
        size = self.task.eval_batch
        train_loss, train_acc = self._split_metrics(params, data.x_train, data.y_train, k_train, size)
        val_loss, val_acc = self._split_metrics(params, data.x_val, data.y_val, k_val, size)
        return Metrics(train_loss, train_acc, val_loss, val_acc)

    def test_metrics(self, data: Dataset, params, batch: Optional[int] = None):
        """(loss, accuracy) on ``data``'s whole test split, evaluated in batches of ``batch`` examples
        (default ``task.test_batch``) inside ``lax.map``, so a vmapped grid of runs holds at most
        [runs, batch, ...] activations, never [runs, test examples, ...]."""
        batch = self.task.test_batch if batch is None else batch
        x, y = data.x_test, data.y_test
        n = x.shape[0]
        if n <= batch:
            return self.loss_and_accuracy(params, x, y)
        pieces = n // batch
        xs = x[: pieces * batch].reshape(pieces, batch, *x.shape[1:])
        ys = y[: pieces * batch].reshape(pieces, batch)
        losses, accs = jax.lax.map(lambda b: self.loss_and_accuracy(params, *b), (xs, ys))
        rest = n - pieces * batch
        loss, acc = losses.sum() * batch, accs.sum() * batch
        if rest:
            l_rest, a_rest = self.loss_and_accuracy(params, x[pieces * batch:], y[pieces * batch:])
            loss, acc = loss + l_rest * rest, acc + a_rest * rest
        return loss / n, acc / n
