"""L-BFGS written in TensorFlow, so that a whole iteration, line search included, runs inside one graph.

Nocedal & Wright, "Numerical Optimization" (2006): the two-loop recursion (Alg. 7.4) with the scaled
initial Hessian of eq. 7.20, and a backtracking line search on the Armijo condition (Alg. 3.1).

The two loops are run in the space of the stored pairs. Each loop's recursion only needs the dot products of
the pairs with each other (kept up to date as pairs are stored) and with the gradient, so the loops become two
triangular solves of history x history, and the image-sized work is four matrix-vector products over the
history, plus two when a pair is stored. Run literally, pair by pair, the loops cost a small copy and a few
single-threaded vector ops per pair: on the 2-core CPU, at a history of 100 pairs on a 512x341 image, 204 ms
against 18 ms this way for the direction alone (bench/bench_lbfgs.py).
"""

import tensorflow as tf


class LBFGS:
    """Minimises a function of one tf.Variable by limited-memory BFGS.

    Usage:
      optimizer = LBFGS(variable, history=100)
      step = tf.function(lambda: optimizer.step(value_and_grad))  # with XLA: LBFGS(..., jit_compile=True) and
      for _ in range(num_steps): loss, aux = step()               # tf.function(..., jit_compile=True)

    `value_and_grad()` reads the variable and returns (loss, aux, gradient), where aux is any nest of
    tensors with a fixed structure (for example the named loss terms); it is returned for the accepted point.

    Args:
      variable: the tf.Variable to optimise.
      history: the curvature pairs kept.
      max_line_search: the most loss evaluations a line search makes.
      armijo: the line search's sufficient-decrease constant.
      initial_step: with no pair stored, the first trial moves the largest coordinate by this much.
      jit_compile: whether `step` will be compiled with XLA (tf.function(jit_compile=True)); it must match, as
        XLA has no op for what `step` otherwise does to read the history without copies.

    Attributes:
      evaluations: how many times `value_and_grad` has been called (line-search trials included).
    """

    def __init__(self, variable, history=100, max_line_search=20, armijo=1e-4, initial_step=1.0, jit_compile=False):
        if history < 1:
            raise ValueError(f"L-BFGS history must be at least 1, got {history}")
        self.variable = variable
        self.history = int(history)
        self.max_line_search = int(max_line_search)
        self.armijo = float(armijo)
        self.initial_step = float(initial_step)
        self._jit_compile = jit_compile
        size = int(tf.size(variable))
        zeros = lambda *shape: tf.Variable(tf.zeros(shape, tf.float32), trainable=False)
        self._s = zeros(self.history, size)  # position differences x_{k+1} - x_k
        self._y = zeros(self.history, size)  # gradient differences g_{k+1} - g_k
        self._sy = zeros(self.history, self.history)  # s_i . y_j
        self._yy = zeros(self.history, self.history)  # y_i . y_j
        self._rho = zeros(self.history)  # 1 / (y^T s)
        self._gamma = tf.Variable(1.0, trainable=False)  # initial Hessian scale, s^T y / y^T y (eq. 7.20)
        self._count = tf.Variable(0, trainable=False)  # stored pairs, at most `history`
        self._head = tf.Variable(0, trainable=False)  # the row the next pair is written to (a ring)
        self._loss = tf.Variable(0.0, trainable=False)
        self._grad = zeros(size)
        self._has_grad = tf.Variable(False, trainable=False)
        self.iterations = tf.Variable(0, trainable=False)
        self.evaluations = tf.Variable(0, trainable=False)

    def _evaluate(self, value_and_grad):
        loss, aux, grad = value_and_grad()
        self.evaluations.assign_add(1)
        return tf.cast(loss, tf.float32), aux, tf.reshape(tf.cast(grad, tf.float32), [-1])

    def _direction(self, grad):
        """-H grad, H the L-BFGS inverse Hessian: Alg. 7.4's two loops, in the pairs' space.

        Newest to oldest, the first loop sets alpha_i = rho_i s_i.q_i, where q_i is -grad less alpha_j y_j for
        each newer j: rho_i (s_i.q - sum_j alpha_j s_i.y_j), a lower-triangular system in newest-first order.
        Oldest to newest, the second sets beta_i = rho_i y_i.r_i, where r_i is gamma q_m (q_m = -grad - sum_j
        alpha_j y_j) plus (alpha_j - beta_j) s_j for each older j: an upper-triangular one. The result is
        gamma q_m + sum_j (alpha_j - beta_j) s_j.

        Every shape is the history's, whatever the count, as XLA needs: rows not yet stored (or left from before
        a reset) get no weight.
        """
        q = -grad
        if self._count == 0:
            return self._gamma * q
        return self._direction_from_pairs(q)

    def _direction_from_pairs(self, q):
        """_direction with one or more pairs stored; q = -grad."""
        # The pairs stay in their rows; pair-space values are put in newest-first order, and the coefficients put
        # back. The first `count` in that order are the stored pairs.
        rows = tf.math.floormod(self._head - 1 - tf.range(self.history), self.history)
        stored = tf.range(self.history) < self._count

        def keep(values):  # [history, n] in newest-first order: zero where no pair is stored
            return tf.where(stored[:, None], values, 0.0)

        def newest_first(values):  # [history] by row -> [history, 1] newest first
            return keep(tf.gather(values, rows)[:, None])

        def in_pairs(matrix):  # [history, history] by row -> newest first on both axes
            return tf.transpose(keep(tf.transpose(keep(tf.gather(tf.gather(matrix, rows), rows, axis=1)))))

        def in_rows(values):  # [history, 1] newest first -> [history] by row
            return tf.scatter_nd(rows[:, None], values[:, 0], [self.history])

        sy, yy = in_pairs(self._sy), in_pairs(self._yy)  # sy[k, l] = s_k . y_l
        rho = newest_first(self._rho)
        s_q, y_q = newest_first(tf.linalg.matvec(self._s, q)), newest_first(tf.linalg.matvec(self._y, q))
        eye = tf.eye(self.history)
        # alpha_k = rho_k (s_k.q - sum_{l newer, l < k} alpha_l s_k.y_l)
        newer = tf.linalg.band_part(sy, -1, 0) * (1.0 - eye)
        alpha = tf.linalg.triangular_solve(eye + rho * newer, rho * s_q, lower=True)
        # beta_k = rho_k (gamma (y_k.q - sum_l alpha_l y_k.y_l) + sum_{l older, l > k} (alpha_l - beta_l) y_k.s_l)
        older = tf.linalg.band_part(tf.transpose(sy), 0, -1) * (1.0 - eye)  # [k, l] = s_l . y_k for l > k
        right = rho * (self._gamma * (y_q - tf.matmul(yy, alpha)) + tf.matmul(older, alpha))
        beta = tf.linalg.triangular_solve(eye + rho * older, right, lower=False)
        return (self._gamma * (q - tf.linalg.matvec(self._y, in_rows(alpha), transpose_a=True))
                + tf.linalg.matvec(self._s, in_rows(alpha - beta), transpose_a=True))

    def _remember(self, s, y):
        ys = tf.tensordot(y, s, 1)
        yy = tf.tensordot(y, y, 1)
        # Keep H positive definite: skip pairs that violate the curvature condition. The threshold is
        # relative, so that the optimiser behaves the same for any scale of the loss. A non-finite pair is
        # skipped too: the rows not stored are weighted by zero, and 0 * inf would poison every later direction.
        if tf.math.is_finite(ys) & tf.math.is_finite(yy) & (ys > 1e-10 * yy):
            head = self._head.read_value()
            for pairs, row in ((self._s, s), (self._y, y)):
                pairs.scatter_update(tf.IndexedSlices(row[None], head[None]))
                if not self._jit_compile:  # (XLA has no such op, and keeps variables its own way)
                    # A scatter switches the variable to copy-on-read: every later read would copy the whole
                    # history, four copies a step (at 512x341 px with 100 pairs, 57 against 37 ms a step on a
                    # cheap function, and a peak of 1.7 against 1.1 GB). Switched back, reads share the buffer, and a
                    # later scatter copies it only while a read is still held.
                    tf.raw_ops.DisableCopyOnRead(resource=pairs.handle)
            # The new pair's dot products with every row (those with rows not stored get no weight).
            y_dots = tf.matmul(self._y, tf.stack([s, y], axis=1))  # [history, 2]: y_j . s and y_j . y
            s_dots = tf.linalg.matvec(self._s, y)  # s_i . y
            self._sy.assign(_with_row_and_column(self._sy, head, y_dots[:, 0], s_dots))
            self._yy.assign(_with_row_and_column(self._yy, head, y_dots[:, 1], y_dots[:, 1]))
            self._rho.scatter_update(tf.IndexedSlices((1.0 / ys)[None], head[None]))
            self._gamma.assign(ys / yy)
            self._head.assign(tf.math.floormod(head + 1, self.history))
            self._count.assign(tf.minimum(self._count + 1, self.history))

    def reset(self):
        """Forgets the curvature pairs and the cached gradient (call after changing the variable)."""
        self._count.assign(0)
        self._head.assign(0)
        self._gamma.assign(1.0)
        self._has_grad.assign(False)

    def step(self, value_and_grad):
        """One L-BFGS iteration with a backtracking line search. Call it inside a tf.function.

        Returns:
          (loss, aux) at the accepted point.
        """
        if not self._has_grad:
            loss, _, grad = self._evaluate(value_and_grad)
            self._loss.assign(loss)
            self._grad.assign(grad)
            self._has_grad.assign(True)
        x0 = tf.reshape(self.variable, [-1])
        f0, g0 = self._loss.read_value(), self._grad.read_value()
        direction = self._direction(g0)
        slope = tf.tensordot(g0, direction, 1)
        if slope >= 0.0:  # not a descent direction: restart from steepest descent
            self._count.assign(0)
            self._gamma.assign(1.0)
            direction = -g0
            slope = -tf.tensordot(g0, g0, 1)
        # Without curvature pairs the direction is the raw gradient, whose scale is arbitrary: make that
        # step move the largest coordinate by `initial_step` and let the line search shrink it.
        step_size = tf.where(self._count > 0, 1.0,
                             self.initial_step / (tf.reduce_max(tf.abs(direction)) + 1e-30))
        self.variable.assign(tf.reshape(x0 + step_size * direction, self.variable.shape))
        loss, aux, grad = self._evaluate(value_and_grad)
        trials = 1
        while loss > f0 + self.armijo * step_size * slope and trials < self.max_line_search:
            step_size *= 0.5
            self.variable.assign(tf.reshape(x0 + step_size * direction, self.variable.shape))
            loss, aux, grad = self._evaluate(value_and_grad)
            trials += 1
        self._remember(step_size * direction, grad - g0)
        self._loss.assign(loss)
        self._grad.assign(grad)
        self.iterations.assign_add(1)
        return loss, aux


def _with_row_and_column(matrix, index, row, column):
    """`matrix` with row `index` set to `row`, then column `index` to `column`."""
    matrix = tf.tensor_scatter_nd_update(matrix, index[None, None], row[None])
    return tf.transpose(tf.tensor_scatter_nd_update(tf.transpose(matrix), index[None, None], column[None]))
