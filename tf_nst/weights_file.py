"""What a VGG weights file holds, read with h5py: how many conv layers, hence which backbone it fits.

Used to explain a refused weights file in the user's terms (its backbone and what to pass) rather than in
Keras's loader internals.
"""

import h5py

# Conv layers (4-D kernels) of each backbone: VGG16 has 13, VGG19 16 (Simonyan & Zisserman 2015, D and E).
CONV_LAYERS = {13: "vgg16", 16: "vgg19"}


def count_conv_layers(path):
    """The number of 4-D arrays (conv kernels) in an .h5 file, in either Keras layout; None if unreadable."""
    count = 0

    def visit(_, item):
        nonlocal count
        if isinstance(item, h5py.Dataset) and item.ndim == 4:
            count += 1

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except (OSError, ValueError):
        return None
    return count


def mismatch_message(path, backbone, reason, example_file):
    """The one-line error for a weights file that Keras could not load into `backbone`."""
    count = count_conv_layers(path)
    looks_like = CONV_LAYERS.get(count)
    if looks_like and looks_like != backbone:
        return (f"weights file {path!r} does not fit --backbone={backbone}: it holds {count} conv layers, "
                f"like {looks_like}; pass --backbone={looks_like}, or a {backbone} file such as {example_file}")
    found = "no readable layers" if count is None else f"{count} conv layers"
    return (f"weights file {path!r} does not fit --backbone={backbone} (it holds {found}; {reason}); pass a "
            f"{backbone} file such as {example_file}")
