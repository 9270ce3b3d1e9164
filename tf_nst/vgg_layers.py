"""The layer names of the VGG backbones, without TensorFlow: the command line checks --style_layers and
--content_layers against them before TensorFlow loads (vgg.py re-exports them)."""

from tf_nst.errors import UserInputError

# Convolutions per block: Simonyan & Zisserman 2015, configurations D (VGG16) and E (VGG19).
BLOCK_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def layer_names(backbone):
    """All layer names of a backbone's convolutional stack, in order."""
    if backbone not in BLOCK_CONVS:
        raise UserInputError(f"unknown backbone {backbone!r}; use one of {', '.join(BLOCK_CONVS)}")
    names = []
    for block, convs in enumerate(BLOCK_CONVS[backbone], start=1):
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
    return names


def validate_layers(backbone, names, flag_name="layers"):
    """Raises UserInputError unless every name is a layer of the backbone."""
    valid = layer_names(backbone)
    if not names:
        raise UserInputError(f"--{flag_name} is empty; give at least one of {', '.join(valid)}")
    for name in names:
        if name not in valid:
            raise UserInputError(
                f"unknown {backbone} layer {name!r} in --{flag_name}; valid layers are {', '.join(valid)}")
