"""The step counter of a per-image transfer: it reports every step, stops the run when asked to (Ctrl-C) or
when the loss stops being a number, keeps the last image whose loss and pixels were finite, and says when a
scale (or tile) has converged.
"""

import numpy as np


class TransferStopped(Exception):
    """optimize.transfer stopped before its last step.

    Attributes:
      step: the step at which it stopped (counted as count_steps counts, from 1).
      reason: "requested" (the caller's should_stop) or "non-finite" (the loss or the pixels at `step`).
      image: the best image so far, [H, W, 3] uint8 at the output size: the last one whose loss and pixels were
        finite, tiles done so far blended in; set by optimize.transfer.
    """

    def __init__(self, step, reason):
        super().__init__(f"transfer stopped at step {step}: {reason}")
        self.step = step
        self.reason = reason
        self.image = None
        self.partial = None  # [1, h, w, 3] float at the current scale, set where the tiles are known


class Convergence:
    """The stopping rule of --tolerance: the best total loss so far improved by less than `tolerance` (a
    fraction of it) over the last `window` steps. Tolerance 0 never stops.
    """

    def __init__(self, tolerance, window):
        self.tolerance = float(tolerance)
        self.window = int(window)
        self._best = []  # the best total after each step
        self.improvement = None  # the fraction the best improved over the last window, once known

    def update(self, total):
        """Records one step's total loss; returns True when the run has converged."""
        self._best.append(min(total, self._best[-1]) if self._best else total)
        if self.tolerance <= 0 or len(self._best) <= self.window:
            return False
        then, now = self._best[-1 - self.window], self._best[-1]
        self.improvement = (then - now) / abs(then) if then else 0.0
        return self.improvement < self.tolerance


class Progress:
    """Counts the steps across scales and tiles and passes them, and the tiles, to the caller's callbacks."""

    def __init__(self, callback=None, tile_callback=None, should_stop=None, convergence=None,
                 converged_callback=None, begin_callback=None):
        """convergence: a () -> Convergence factory (one per scale or tile), or None never to stop early.

        begin_callback: optional begin_callback(step, num_steps), called by begin: the steps counted before the
        scale or tile and the steps planned for it.
        """
        self._callback = callback
        self._begin_callback = begin_callback
        self._tile_callback = tile_callback
        self._should_stop = should_stop
        self._new_convergence = convergence
        self._converged_callback = converged_callback
        self._convergence = None
        self._steps = 0
        self._planned_end = 0  # the step count where the current scale or tile's planned steps end
        self.last_good = None  # [1, h, w, 3] float32 NumPy: the image being optimised, last known finite

    def begin(self, image, num_steps):
        """Called with the start of every whole scale or tile ([1, h, w, 3]) and the steps planned for it.

        A scale or tile that converged early gives up the rest of its planned steps: the count moves on to
        where they would have ended, so the steps stay numbered out of the run's planned total (count_steps)
        and the progress line's ETA counts only what is still planned.
        """
        self._steps = max(self._steps, self._planned_end)
        self._planned_end = self._steps + num_steps
        self.last_good = np.array(image, np.float32)
        self._convergence = self._new_convergence() if self._new_convergence else None
        if self._begin_callback is not None:
            self._begin_callback(self._steps, num_steps)

    def step(self, total, terms, image):
        """After each step: `total` and `terms` were evaluated in it, `image` is the variable it updated.

        Returns:
          True when the scale or tile has converged (Convergence): the caller stops optimising it.

        Raises:
          TransferStopped: the loss or the image is not finite, or should_stop() says stop (after the step).
        """
        self._steps += 1
        pixels = image.numpy()
        value = float(total)
        if not (np.isfinite(value) and np.isfinite(pixels).all()):
            raise TransferStopped(self._steps, "non-finite")
        self.last_good = pixels
        converged = self._convergence is not None and self._convergence.update(value)
        if converged and self._converged_callback is not None:  # first, so the step's report can say so
            self._converged_callback(self._steps, self._convergence)
        if self._callback is not None:
            self._callback(self._steps, {"total": total, **terms}, image)
        if self._should_stop is not None and self._should_stop():
            raise TransferStopped(self._steps, "requested")
        return converged

    def tile(self, index, num_tiles):
        if self._tile_callback is not None:
            self._tile_callback(index, num_tiles)
