"""The training data of the feed-forward stylizer: the image files, their random crops as a tf.data pipeline,
and the style image.
"""

import dataclasses

import tensorflow as tf

from tf_nst import files
from tf_nst import image_io
from tf_nst import vgg
from tf_nst.errors import UserInputError


@dataclasses.dataclass(frozen=True)
class DatasetFiles:
    """Training image files: those TensorFlow decodes, and those it cannot or that are smaller than
    files.MIN_IMAGE_SIDE (skipped)."""

    images: tuple
    skipped: tuple


def find_images(folder, kind="dataset", contents="training images"):
    """Lists the training images under `folder` and checks each with the decoder that training uses.

    Args:
      folder: searched recursively.
      kind, contents: what the folder is, for the messages (files.list_images).

    Returns:
      A DatasetFiles with the decodable and the skipped paths, each sorted.

    Raises:
      UserInputError: the folder is missing, holds no image files, or none of them decodes.
    """
    paths = files.list_images(folder, kind, contents)
    decodable = _decodable_indices(paths)
    if not decodable:
        raise UserInputError(f"none of the {len(paths)} image files under {folder!r} can be decoded with "
                             f"{files.MIN_IMAGE_SIDE} px on each side; {files.MIN_SIDE_RULE}")
    skipped = tuple(path for index, path in enumerate(paths) if index not in decodable)
    return DatasetFiles(tuple(path for index, path in enumerate(paths) if index in decodable), skipped)


def _decodable_indices(paths):
    """The indices of the files image_io.decode reads, decoding them once, in parallel, inside tf.data."""

    def check(index, path):
        shape = tf.shape(image_io.decode(tf.io.read_file(path)))
        too_small = tf.reduce_min(shape[:2]) < files.MIN_IMAGE_SIDE
        return index, tf.where(too_small, -1, 1)  # the shape keeps the decode


    indices = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), list(paths)))
    indices = indices.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False).ignore_errors()
    return {int(index) for index, usable in indices.as_numpy_iterator() if usable > 0}


def load_style(config):
    """The style image, its longer side resized to config.style_size; float32 [H, W, 3] in [0, 255]."""
    style = image_io.resize_max_side(image_io.read_image(config.style_image), config.style_size)
    min_side = vgg.min_input_size(config.extractor.style_layers)
    if min(style.shape[:2]) < min_side:
        raise UserInputError(
            f"style image {config.style_image!r} becomes {style.shape[1]}x{style.shape[0]} px at style size "
            f"{config.style_size}; the style layers need at least {min_side} px on each side")
    return style


def load_crop(path, image_size, random, resize=None):
    """One training example: decoded, shorter side resized to `resize` (default: image_size), cropped to an
    image_size square (at random, or the centre); float [0, 255]."""
    image = image_io.resize_shorter_side(image_io.decode(tf.io.read_file(path)), resize or image_size)
    if random:
        return tf.image.random_crop(image, [image_size, image_size, 3])
    return tf.image.resize_with_crop_or_pad(image, image_size, image_size)


def centre_crops(paths, image_size, resize=None):
    """The images at `paths` as load_crop's centre crops, stacked: [len(paths), image_size, image_size, 3]
    (the fixed inputs of a training preview)."""
    return tf.stack([load_crop(path, image_size, random=False, resize=resize) for path in paths])


def make_dataset(paths, image_size, batch_size, seed=0, resize=None):
    """An endless, shuffled, batched dataset of random crops (load_crop); [batch, size, size, 3] float32 in
    [0, 255]."""
    dataset = tf.data.Dataset.from_tensor_slices(list(paths))
    dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.map(lambda path: load_crop(path, image_size, random=True, resize=resize),
                          num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.ignore_errors(log_warning=True)  # a file that changed after find_images checked it
    dataset = dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return _sharded_by_data(dataset)


def make_pair_dataset(content_paths, style_paths, image_size, batch_size, seed=0, resize=None):
    """An endless dataset of random (content, style) pairs of crops, each [batch, size, size, 3] (make_dataset):
    two independent shuffles, so every content image meets every style in turn."""
    pairs = tf.data.Dataset.zip((make_dataset(content_paths, image_size, batch_size, seed, resize),
                                 make_dataset(style_paths, image_size, batch_size, seed + 1, resize)))
    return _sharded_by_data(pairs)


def _sharded_by_data(dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
