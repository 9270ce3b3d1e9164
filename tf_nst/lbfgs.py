"""L-BFGS written in TensorFlow, so that a whole iteration, line search included, runs inside one graph.

Nocedal & Wright, "Numerical Optimization" (2006): the two-loop recursion (Alg. 7.4) with the scaled
initial Hessian of eq. 7.20, and a backtracking line search on the Armijo condition (Alg. 3.1).
"""

import tensorflow as tf


class LBFGS:
    """Minimises a function of one tf.Variable by limited-memory BFGS.

    Usage:
      optimizer = LBFGS(variable, history=100)
      step = tf.function(lambda: optimizer.step(value_and_grad))
      for _ in range(num_steps): loss, aux = step()

    `value_and_grad()` reads the variable and returns (loss, aux, gradient), where aux is any nest of
    tensors with a fixed structure (for example the named loss terms); it is returned for the accepted point.

    Attributes:
      evaluations: how many times `value_and_grad` has been called (line-search trials included).
    """

    def __init__(self, variable, history=100, max_line_search=20, armijo=1e-4, initial_step=1.0):
        if history < 1:
            raise ValueError(f"L-BFGS history must be at least 1, got {history}")
        self.variable = variable
        self.history = int(history)
        self.max_line_search = int(max_line_search)
        self.armijo = float(armijo)
        self.initial_step = float(initial_step)
        size = int(tf.size(variable))
        zeros = lambda *shape: tf.Variable(tf.zeros(shape, tf.float32), trainable=False)
        self._s = zeros(self.history, size)  # position differences x_{k+1} - x_k
        self._y = zeros(self.history, size)  # gradient differences g_{k+1} - g_k
        self._rho = zeros(self.history)  # 1 / (y^T s)
        self._gamma = tf.Variable(1.0, trainable=False)  # initial Hessian scale, s^T y / y^T y (eq. 7.20)
        self._count = tf.Variable(0, trainable=False)  # stored pairs, at most `history`
        self._head = tf.Variable(0, trainable=False)  # the slot the next pair is written to
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
        """-H grad by the two-loop recursion over the stored pairs (Alg. 7.4)."""
        # Rows are read with sparse_read (a resource gather): indexing the variable would read, and in a
        # loop copy, the whole [history, size] buffer at every iteration.
        q = -grad
        alphas = tf.zeros([self.history])
        for i in tf.range(self._count):  # newest to oldest
            index = tf.math.floormod(self._head - 1 - i, self.history)
            alpha = self._rho[index] * tf.tensordot(self._s.sparse_read(index), q, 1)
            alphas = tf.tensor_scatter_nd_update(alphas, [[index]], [alpha])
            q -= alpha * self._y.sparse_read(index)
        r = self._gamma * q
        for i in tf.range(self._count):  # oldest to newest
            index = tf.math.floormod(self._head - self._count + i, self.history)
            beta = self._rho[index] * tf.tensordot(self._y.sparse_read(index), r, 1)
            r += self._s.sparse_read(index) * (alphas[index] - beta)
        return r

    def _remember(self, s, y):
        ys = tf.tensordot(y, s, 1)
        yy = tf.tensordot(y, y, 1)
        # Keep H positive definite: skip pairs that violate the curvature condition. The threshold is
        # relative, so that the optimiser behaves the same for any scale of the loss.
        if ys > 1e-10 * yy:
            self._s.scatter_update(tf.IndexedSlices(s[None], self._head[None]))
            self._y.scatter_update(tf.IndexedSlices(y[None], self._head[None]))
            self._rho.scatter_update(tf.IndexedSlices((1.0 / ys)[None], self._head[None]))
            self._gamma.assign(ys / yy)
            self._head.assign(tf.math.floormod(self._head + 1, self.history))
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
