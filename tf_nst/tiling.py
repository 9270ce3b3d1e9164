"""Tiles for memory-bounded high resolution: where an image's overlapping tiles lie and how they are blended back.

Pure NumPy geometry; optimize.py decides what runs in a tile.
"""

import dataclasses

import numpy as np

from tf_nst.errors import UserInputError

# Below this a tile holds too few cells of VGG's deeper layers (block5 sees 1/16 of the side) to carry a style.
MIN_TILE_SIZE = 64
# About the receptive field of block4_conv1 (60 px in VGG16, 68 in VGG19): the ramp spans the pixels whose
# features near a tile's cut edge see the cut.
DEFAULT_OVERLAP = 64


@dataclasses.dataclass(frozen=True, eq=False)
class Tile:
    """One tile of an image, and its weight in the blend.

    Attributes:
      top, left: its first row and column in the image.
      height, width: its size.
      row_weights, column_weights: [height] and [width] float32; the tile's weight at a pixel is the product
        of its row's and its column's (see blend_weight).
    """

    top: int
    left: int
    height: int
    width: int
    row_weights: np.ndarray
    column_weights: np.ndarray

    @property
    def window(self):
        """(rows, columns) slices of the image that the tile covers."""
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def check_tiling(tile_size, overlap):
    """Raises UserInputError unless tile_size >= MIN_TILE_SIZE and tile_size > 2 * overlap >= 0.

    A tile larger than twice the overlap keeps the blend's ramps at its two ends apart (see blend_weight).
    """
    if overlap < 0 or tile_size < MIN_TILE_SIZE or tile_size <= 2 * overlap:
        raise UserInputError(
            f"tile size {tile_size} with overlap {overlap} does not work: a tile needs at least {MIN_TILE_SIZE} px "
            f"and more than twice the overlap ({2 * max(overlap, 0) + 1} px or more), and the overlap 0 or more")


def tile_starts(length, tile_size, overlap):
    """Where the tiles along one side start: the fewest full-size tiles, each pair sharing >= `overlap` px.

    The starts are spread evenly from 0 to length - tile_size, so the last tile ends at the border (edge tiles
    are shifted inward rather than cut) and every overlap is about the same. A side no longer than a tile has
    one tile.
    """
    if length <= tile_size:
        return [0]
    count = -(-(length - overlap) // (tile_size - overlap))  # ceil: (count - 1) strides reach length - tile_size
    return [i * (length - tile_size) // (count - 1) for i in range(count)]


def tile_layout(height, width, tile_size, overlap):
    """The tiles of a height x width image, in raster order (row by row), all of one size, with their weights.

    Tiles are tile_size x tile_size, or the image's side where that is shorter.
    """
    rows, columns = tile_starts(height, tile_size, overlap), tile_starts(width, tile_size, overlap)
    tile_height, tile_width = min(height, tile_size), min(width, tile_size)
    row_weights = _axis_weights(rows, tile_height, height, overlap)
    column_weights = _axis_weights(columns, tile_width, width, overlap)
    return [Tile(top, left, tile_height, tile_width, row_weights[r], column_weights[c])
            for r, top in enumerate(rows) for c, left in enumerate(columns)]


def _axis_weights(starts, size, length, overlap):
    """Each tile's weights along one side: its window, divided by the sum of all windows at each pixel.

    A window is 1 but over the `overlap` pixels next to a cut edge (an edge inside the image), where it ramps
    linearly down towards the edge. Where two tiles share exactly `overlap` pixels the two ramps already sum
    to 1 (a linear cross-fade); where they share more (edge tiles shifted inward, or three tiles over a pixel
    on a side just longer than two tiles), the division makes the weights sum to 1 all the same.
    """
    windows = [_window(size, overlap if index > 0 else 0, overlap if index < len(starts) - 1 else 0)
               for index in range(len(starts))]
    total = np.zeros(length, np.float32)
    for start, window in zip(starts, windows):
        total[start:start + size] += window
    return [window / total[start:start + size] for start, window in zip(starts, windows)]


def _window(size, before, after):
    window = np.ones(size, np.float32)
    window[:before] = np.arange(1, before + 1, dtype=np.float32) / (before + 1)
    window[size - after:] = np.arange(after, 0, -1, dtype=np.float32) / (after + 1)
    return window


def blend_weight(tile):
    """The tile's [height, width] weight in the blend.

    The weights of all tiles sum to 1 at every pixel (a partition of unity: along each side they do, and a
    tile's weight is its row weight times its column weight). Each is 1 where no other tile reaches and at
    the image's borders, and fades linearly to about 0 over the tile_overlap pixels next to each cut edge,
    where VGG saw the cut, while the neighbour's fades in: seams become cross-fades.
    """
    return np.outer(tile.row_weights, tile.column_weights)


def blend_into(image, base, pixels, tile):
    """Adds a tile to the image being assembled: image += w * (pixels - base) in its window, in place.

    Starting from image = base, the image after some tiles is sum_k w_k * tile_k + (1 - sum_k w_k) * base:
    finished tiles where they are, faded into `base` towards the edges of the tiles still to come (whose
    optimisation starts from there), and after every tile of the layout exactly sum_k w_k * tile_k, since the
    weights sum to 1.

    Args:
      image: the [H, W, C] float image being assembled, a writable NumPy array.
      base: the [H, W, C] image before any tile (what `image` started as).
      pixels: the tile's [height, width, C] new pixels.
      tile: a Tile of the layout; w is `blend_weight(tile)`.
    """
    window = tile.window
    image[window] += blend_weight(tile)[..., None] * (np.asarray(pixels, image.dtype) - base[window])
