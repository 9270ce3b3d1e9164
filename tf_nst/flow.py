"""Optical flow between video frames (OpenCV's DIS), warping by it, where it can be trusted, and the warping
error that measures temporal consistency. NumPy and OpenCV only; no TensorFlow.

Flow convention: `flow` of frame t is the backward flow, from t to t-1: frame_t(x) ~ frame_{t-1}(x + flow(x)),
so warp(frame_{t-1}, flow) lines the previous frame up with frame t.
"""

import dataclasses

import numpy as np

from tf_nst import optional

# Ruder et al. 2016, section 3.2: the forward-backward check and the motion-boundary check.
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5
BOUNDARY_RELATIVE = 0.01
BOUNDARY_ABSOLUTE = 0.002


def _cv2():
    return optional.require("cv2", "video (optical flow)")


@dataclasses.dataclass(frozen=True)
class FrameFlow:
    """The flow from one frame back to the previous one, and where it can be trusted.

    Attributes:
      backward: float32 [H, W, 2] (dx, dy): frame_t(x) ~ frame_{t-1}(x + backward(x)).
      reliable: float32 [H, W] of 0 and 1: 1 where the forward-backward check passes, the point lands inside
        the previous frame and (with motion boundaries) no motion boundary is near.
    """

    backward: np.ndarray
    reliable: np.ndarray


def _gray(frame):
    cv2 = _cv2()
    return cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """DIS optical flow (Kroeger et al. 2016) at OpenCV's MEDIUM preset; one instance per thread."""

    def __init__(self, preset="medium"):
        cv2 = _cv2()
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self._dis = cv2.DISOpticalFlow_create(presets[preset])

    def flow(self, source, target):
        """float32 [H, W, 2]: source(x) ~ target(x + flow(x)), for [H, W, 3] uint8 RGB frames."""
        return self._dis.calc(_gray(source), _gray(target), None)

    def frame_flow(self, previous, current, motion_boundaries=True):
        """The FrameFlow of `current` back to `previous` (both [H, W, 3] uint8 RGB)."""
        backward = self.flow(current, previous)
        forward = self.flow(previous, current)
        return FrameFlow(backward, reliability(backward, forward, motion_boundaries))


def sample_points(flow):
    """(map_x, map_y, inside): the float32 points x + flow(x), and whether each lies inside the frame."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return map_x, map_y, inside


def warp(image, flow):
    """`image` ([H, W, C] or [H, W]) sampled at x + flow(x), bilinearly; points outside take the nearest edge.

    Returns float32, the image's shape.
    """
    cv2 = _cv2()
    map_x, map_y, _ = sample_points(flow)
    return cv2.remap(np.asarray(image, np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def reliability(backward, forward, motion_boundaries=True):
    """float32 [H, W] of 0 and 1: where the backward flow of frame t can be trusted (Ruder et al. 2016, §3.2).

    Unreliable: the point lands outside the previous frame; the forward flow at the point it lands on does not
    bring it back, |b + f(x + b)|^2 > 0.01 (|b|^2 + |f(x + b)|^2) + 0.5 (occlusions); with motion_boundaries,
    |grad b_x|^2 + |grad b_y|^2 > 0.01 |b|^2 + 0.002.
    """
    _, _, inside = sample_points(backward)
    # On the flows' x and y planes apart (cv2.split): NumPy's sums over a last axis of 2 took 4x as long (16 ms
    # against 4 ms at 512x340 px, more than the two flows' 19 ms).
    cv2 = _cv2()
    back_x, back_y = cv2.split(np.asarray(backward, np.float32))
    there_x, there_y = cv2.split(warp(forward, backward))
    back_squared = back_x * back_x + back_y * back_y
    disagreement = np.square(back_x + there_x) + np.square(back_y + there_y)
    magnitudes = back_squared + there_x * there_x + there_y * there_y
    reliable = inside & (disagreement <= CONSISTENCY_RELATIVE * magnitudes + CONSISTENCY_ABSOLUTE)
    if motion_boundaries:
        gradient = sum(np.square(g) for plane in (back_x, back_y) for g in np.gradient(plane))
        reliable &= gradient <= BOUNDARY_RELATIVE * back_squared + BOUNDARY_ABSOLUTE
    return reliable.astype(np.float32)


def frame_warping_error(output, previous_output, frame_flow):
    """Lai et al. 2018's warping error of one frame pair: the mean squared difference, on a [0, 1] scale and
    averaged over the channels, between `output` and the previous output warped by the input's flow, over the
    reliable pixels (0 where none is)."""
    warped = warp(previous_output, frame_flow.backward)
    squared = np.mean(np.square((np.asarray(output, np.float32) - warped) / 255.0), axis=-1)
    count = float(frame_flow.reliable.sum())
    return float((squared * frame_flow.reliable).sum() / count) if count else 0.0


def warping_error(outputs, inputs, estimator=None):
    """Lai et al. 2018's warping error of a clip: frame_warping_error averaged over its consecutive pairs, with
    the flow and the reliable pixels of the input frames.

    Args:
      outputs, inputs: sequences of [H, W, 3] uint8 frames of one size, as many outputs as inputs (at least 2).
      estimator: a FlowEstimator (default: a new one).
    """
    if len(outputs) != len(inputs) or len(inputs) < 2:
        raise ValueError(f"warping_error needs as many outputs as inputs, at least 2; received {len(outputs)} "
                         f"and {len(inputs)}")
    estimator = estimator or FlowEstimator()
    errors = [frame_warping_error(outputs[t], outputs[t - 1], estimator.frame_flow(inputs[t - 1], inputs[t]))
              for t in range(1, len(inputs))]
    return float(np.mean(errors))
