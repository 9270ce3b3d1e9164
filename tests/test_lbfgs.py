"""The TensorFlow L-BFGS against functions with known minima."""

import numpy as np
import pytest
import tensorflow as tf

from tf_nst.lbfgs import LBFGS


def _minimise(function, start, steps, history=10):
    x = tf.Variable(np.asarray(start, np.float32))

    def value_and_grad():
        with tf.GradientTape() as tape:
            value = function(x)
        return value, {"value": value}, tape.gradient(value, x)

    optimizer = LBFGS(x, history=history)
    step = tf.function(lambda: optimizer.step(value_and_grad))
    for _ in range(steps):
        value, aux = step()
    return x.numpy(), float(value), float(aux["value"]), optimizer


def _rosenbrock(x):
    return tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("dimension", [2, 10])
def test_converges_on_rosenbrock(dimension):
    start = np.tile([-1.2, 1.0], dimension // 2)
    x, value, aux_value, _ = _minimise(_rosenbrock, start, steps=200)
    np.testing.assert_allclose(x, np.ones(dimension), atol=1e-4)
    assert value < 1e-8
    assert aux_value == value  # aux belongs to the accepted point


def test_quadratic_is_solved_in_few_steps_and_scale_does_not_matter():
    diagonal = tf.constant(np.linspace(1.0, 50.0, 20), tf.float32)
    target = tf.constant(np.linspace(-3.0, 3.0, 20), tf.float32)
    for scale in (1e-6, 1.0, 1e4):
        x, _, _, _ = _minimise(lambda v: scale * tf.reduce_sum(diagonal * (v - target) ** 2),
                               np.zeros(20), steps=40)
        np.testing.assert_allclose(x, target.numpy(), atol=1e-4)


def test_history_of_one_still_descends():
    start = [-1.2, 1.0]
    _, value, _, optimizer = _minimise(_rosenbrock, start, steps=50, history=1)
    assert value < _rosenbrock(tf.constant(start, tf.float32)).numpy() / 10
    assert int(optimizer.evaluations) >= 51


def test_rejects_empty_history():
    with pytest.raises(ValueError, match="history"):
        LBFGS(tf.Variable([1.0]), history=0)


def test_state_is_not_trainable_and_the_default_history_is_the_configs():
    """Guards what mutation testing found unchecked: a trainable state variable would be watched by every
    GradientTape and collected by Keras as a weight; the class default must match TransferConfig's."""
    from tf_nst import optimize  # pylint: disable=import-outside-toplevel

    x = tf.Variable([1.0, 2.0])
    optimizer = LBFGS(x)
    state = [value for value in vars(optimizer).values() if isinstance(value, tf.Variable) and value is not x]
    assert len(state) == 13 and not any(variable.trainable for variable in state)
    assert optimizer.history == optimize.TransferConfig().lbfgs_history


@pytest.mark.parametrize("stored, reset_after, jit_compile", [
    (5, None, False),  # the ring wraps: only the newest three count
    (4, None, True),  # the newest row is in the middle of the ring; compiled with XLA
    (2, None, False),  # the history not yet full
    (6, 4, False),  # two pairs after a reset: the four before it are still in the rows, and must not count
])
def test_direction_is_minus_the_bfgs_inverse_hessian_times_the_gradient(stored, reset_after, jit_compile):
    """The L-BFGS direction against the explicit BFGS inverse-Hessian update (Nocedal & Wright eq. 6.17) from
    H0 = gamma I, with gamma from the newest pair (eq. 7.20), over the pairs that count, in a history of three.
    (The update needs only s.y > 0 of each pair, not one Hessian behind them all.)
    Guards the recursion's indices and order, which the convergence tests above do not pin (mutation testing
    found them surviving), and which rows count."""
    rng = np.random.default_rng(0)
    size = 4
    basis = rng.normal(size=(size, size))
    hessian = basis @ basis.T + size * np.eye(size)
    optimizer = LBFGS(tf.Variable(np.zeros(size, np.float32)), history=3)
    # Each pair with its own curvature, so that s_i.y_j != s_j.y_i: a pair-product matrix used the wrong way round
    # shows.
    pairs = [(s, hessian @ s + 0.5 * rng.normal(size=size)) for s in rng.normal(size=(stored, size))]
    assert all(s @ y > 0 for s, y in pairs)  # all of them stored
    for index, (s, y) in enumerate(pairs):
        if index == reset_after:
            optimizer.reset()
        optimizer._remember(tf.constant(s, tf.float32), tf.constant(y, tf.float32))  # pylint: disable=protected-access
    counted = pairs[reset_after or 0:][-3:]
    s, y = counted[-1]
    inverse = (s @ y) / (y @ y) * np.eye(size)
    for s, y in counted:
        rho = 1.0 / (y @ s)
        v = np.eye(size) - rho * np.outer(y, s)
        inverse = v.T @ inverse @ v + rho * np.outer(s, s)
    gradient = rng.normal(size=size)
    direction = tf.function(optimizer._direction, jit_compile=jit_compile)  # pylint: disable=protected-access
    np.testing.assert_allclose(direction(tf.constant(gradient, tf.float32)).numpy(), -inverse @ gradient,
                               rtol=1e-4, atol=1e-6)


def test_a_pair_that_is_not_finite_is_not_stored():
    """Rows not stored are weighted by zero, and 0 * inf is NaN: a stored inf would poison every later direction,
    even after reset()."""
    optimizer = LBFGS(tf.Variable(np.zeros(3, np.float32)), history=2)
    optimizer._remember(tf.constant([1.0, 0.0, 0.0]), tf.constant([2.0, 0.0, 0.0]))  # pylint: disable=protected-access
    optimizer._remember(tf.constant([np.inf, 1.0, 0.0]), tf.constant([1.0, 1.0, 0.0]))  # pylint: disable=protected-access
    assert int(optimizer._count) == 1  # pylint: disable=protected-access
    optimizer.reset()
    optimizer._remember(tf.constant([0.0, 1.0, 0.0]), tf.constant([0.0, 4.0, 0.0]))  # pylint: disable=protected-access
    direction = optimizer._direction(tf.constant([1.0, 1.0, 1.0]))  # pylint: disable=protected-access
    np.testing.assert_allclose(direction.numpy(), [-0.25, -0.25, -0.25], rtol=1e-6)  # gamma = s.y / y.y = 1/4


def test_first_step_moves_the_largest_coordinate_by_initial_step_and_the_search_gives_up_at_its_limit():
    """Pins the documented defaults' effect: with no curvature pair the first trial moves the largest
    coordinate by initial_step (1.0) and, on a convex quadratic, passes the Armijo test at once (c = 1e-4);
    a search that never finds a decrease stops after max_line_search (20) trials."""
    x = tf.Variable([0.0, 0.0])
    target = tf.constant([10.0, 5.0])

    def quadratic():
        with tf.GradientTape() as tape:
            value = 0.5 * tf.reduce_sum((x - target) ** 2)
        return value, {}, tape.gradient(value, x)

    optimizer = LBFGS(x)
    optimizer.step(quadratic)
    np.testing.assert_allclose(x.numpy(), [1.0, 0.5], rtol=1e-6)
    assert int(optimizer.evaluations) == 2  # the start, and one accepted trial
    assert int(optimizer.iterations) == 1

    y = tf.Variable([0.0, 0.0])
    uphill = lambda: (tf.reduce_sum(y), {}, -tf.ones(2))  # a gradient that points the wrong way
    optimizer = LBFGS(y)
    optimizer.step(uphill)
    assert int(optimizer.evaluations) == 1 + 20


def test_reset_forgets_the_pairs_and_a_stationary_point_costs_no_search():
    """After reset() a step is a fresh optimiser's step from the same point; at a minimum (zero gradient) the
    trial is accepted at once (Armijo's inequality is strict). Mutation testing found both unchecked."""
    target = tf.constant([3.0, -2.0, 1.0])
    weights = tf.constant([1.0, 10.0, 100.0])

    def run(start, steps, optimizer=None):
        x = optimizer.variable if optimizer else tf.Variable(start)
        x.assign(start)

        def value_and_grad():
            with tf.GradientTape() as tape:
                value = tf.reduce_sum(weights * (x - target) ** 2)
            return value, {}, tape.gradient(value, x)

        optimizer = optimizer or LBFGS(x, history=5)
        for _ in range(steps):
            optimizer.step(value_and_grad)
        return x.numpy(), optimizer

    _, used = run([0.0, 0.0, 0.0], 4)
    used.reset()
    after_reset, _ = run([5.0, 5.0, 5.0], 3, used)
    fresh, _ = run([5.0, 5.0, 5.0], 3)
    np.testing.assert_array_equal(after_reset, fresh)

    _, at_minimum = run(target.numpy(), 1)
    assert int(at_minimum.evaluations) == 2
