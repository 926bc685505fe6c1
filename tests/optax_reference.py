"""Reference inner training for tests: a plain Python loop of ``optax`` updates on an ``InnerTrainer``'s loss."""
import jax
import optax


def optax_run(trainer, data, params, batch_indices, optimizer: optax.GradientTransformation):
    """(params, optimiser state) after one ``optimizer`` step per row of ``batch_indices`` [steps, batch] of
    ``data``'s train split."""
    x, y = data.x_train, data.y_train

    @jax.jit
    def step(params, opt_state, idx):
        grads = jax.grad(lambda p: trainer.loss_and_accuracy(p, x[idx], y[idx])[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = optimizer.init(params)
    for idx in batch_indices:
        params, opt_state = step(params, opt_state, idx)
    return params, opt_state
