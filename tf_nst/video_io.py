"""Video files with PyAV: what a clip holds (probe), its frames as RGB arrays, and the finished frames written
as an H.264 MP4 (the input's audio copied, not re-encoded), a GIF or a folder of PNG frames. No TensorFlow.

A folder of image files is a clip too: its frames in name order, at DEFAULT_FPS.
"""

import concurrent.futures
import dataclasses
import fractions
import os
import queue
import shutil

import numpy as np
from PIL import Image

from tf_nst import files
from tf_nst import optional
from tf_nst import outputs
from tf_nst.errors import UserInputError

# Containers written as H.264 (yuv420p: even sizes), and GIF; an output without an extension is a folder of PNGs.
H264_EXTENSIONS = (".mp4", ".mov", ".mkv", ".m4v")
GIF_EXTENSION = ".gif"
DEFAULT_FPS = fractions.Fraction(25)
FRAME_NAME = "frame_{:06d}.png"
# x264's constant rate factor: 18 is about visually lossless (its documentation), where the default 23 smears
# the fine strokes that stylisation adds.
H264_CRF = "18"
# x264's speed preset: "veryfast" encoded a 512x340 px clip in 2.6 ms a frame on the 2-core CPU where the default
# "medium" took 6.1, at crf 18 either way (BENCHMARKS.md, "Video"): the encoder shares the cores with the
# network, frame by frame.
H264_PRESET = "veryfast"
# The work folder's finished frames: raw NumPy arrays, 0.3 ms to write at 512x340 px where a PNG took 12 ms of
# the cores (at twice the size on disk, 3 bytes a pixel).
WORK_FRAME_NAME = "frame_{:06d}.npy"


def _av():
    return optional.require("av", "video")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe` found.

    Attributes:
      path: the input, a video file or a folder of frames.
      width, height: the first frame's size.
      fps: frames per second, a fractions.Fraction.
      num_frames: the frames the container announces (a folder: its files); None where it does not say.
      has_audio: whether the file holds an audio stream.
    """

    path: str
    width: int
    height: int
    fps: fractions.Fraction
    num_frames: int | None
    has_audio: bool


def output_kind(path):
    """"h264", "gif" or "frames" (a folder of PNG frames: no extension, or a trailing slash).

    Raises:
      UserInputError: another extension.
    """
    extension = os.path.splitext(path.rstrip("/" + os.sep))[1].lower()
    if path.endswith(("/", os.sep)) or not extension:
        return "frames"
    if extension in H264_EXTENSIONS:
        return "h264"
    if extension == GIF_EXTENSION:
        return "gif"
    raise UserInputError(f"output {path!r} has extension {extension!r}; use {', '.join(H264_EXTENSIONS)} (H.264), "
                         f"{GIF_EXTENSION}, or for a folder of PNG frames a name without an extension or ending in "
                         f"{os.sep} ({path.rstrip(os.sep)}{os.sep})")


def _reason(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def probe(path):
    """Reads what `path` holds, decoding its first frame.

    Raises:
      UserInputError: missing, not a video (nor a folder of images), no video stream, no frame, or a frame of
        more than files.MAX_PIXELS pixels.
    """
    if os.path.isdir(path):
        frames = files.list_images(path, kind="frames", contents="frames (image files, in name order)")
        first = files.read_image(frames[0])
        return VideoInfo(path, first.shape[1], first.shape[0], DEFAULT_FPS, len(frames), False)
    if not os.path.isfile(path):
        raise UserInputError(f"input not found: {path!r}; give a video file or a folder of frames")
    av = _av()
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise UserInputError(f"{path!r} holds no video stream; give a video file or a folder of frames")
            stream = container.streams.video[0]
            _check_pixels(path, stream.codec_context.width, stream.codec_context.height)
            first = next(_decoded(container, stream, _Skipped()), None)
            if first is None:
                raise UserInputError(f"{path!r} holds no video frame; give a clip with at least one frame")
            fps = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
            return VideoInfo(path, first.width, first.height, fractions.Fraction(fps), stream.frames or None,
                             bool(container.streams.audio))
    except av.error.FFmpegError as e:
        raise UserInputError(f"cannot read {path!r} as a video ({_reason(e)}); give a video file FFmpeg reads "
                             "(.mp4, .mov, .mkv, .webm, .gif ...) or a folder of frames") from None


def _check_pixels(path, width, height):
    if width * height > files.MAX_PIXELS:
        raise UserInputError(f"{path!r} has {width}x{height} px frames, more than the {files.MAX_PIXELS:,} pixels "
                             "tf_nst reads; give a smaller clip")


class _Skipped:
    """Counts the packets that could not be decoded."""

    def __init__(self):
        self.count = 0


def _decoded(container, stream, skipped):
    """The stream's frames; a packet that does not decode is counted in `skipped` and left out."""
    av = _av()
    for packet in container.demux(stream):
        try:
            decoded = packet.decode()
        except av.error.InvalidDataError:
            skipped.count += 1
            continue
        yield from decoded


def frame_size(width, height, max_size=None, even=False):
    """(width, height) of the frames as stylised: downscaled so that the longer side is at most max_size, and
    with `even` (H.264's yuv420p) each side rounded down to an even number."""
    if max_size and max(width, height) > max_size:
        scale = max_size / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    if even:
        width, height = width - width % 2, height - height % 2
    return width, height


class FrameReader:
    """The frames of a VideoInfo's input, as uint8 [height, width, 3] RGB arrays at `size` (width, height).

    Iterate it once; `skipped` then counts the packets that could not be decoded and were left out.
    """

    def __init__(self, info, size=None):
        self.info = info
        self.size = size or (info.width, info.height)
        self.skipped = 0

    def _resized(self, array):
        if (array.shape[1], array.shape[0]) == tuple(self.size):
            return array
        cv2 = optional.require("cv2", "video")
        return cv2.resize(array, tuple(self.size), interpolation=cv2.INTER_AREA)

    def __iter__(self):
        if os.path.isdir(self.info.path):
            for path in files.list_images(self.info.path, kind="frames", contents="frames"):
                yield self._resized(files.read_image(path))
            return
        av = _av()
        skipped = _Skipped()
        try:
            with av.open(self.info.path) as container:
                stream = container.streams.video[0]
                for frame in _decoded(container, stream, skipped):
                    self.skipped = skipped.count
                    yield self._resized(frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as e:
            raise UserInputError(f"cannot read {self.info.path!r} past frame {skipped.count} ({_reason(e)})") from None
        self.skipped = skipped.count


def read_png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def write_png(path, frame):
    """Writes one frame as a PNG atomically (outputs.atomic_output), at zlib's fastest level: at 512x340 px
    Pillow's default level took 54 ms a frame on the 2-core CPU and level 1 15 ms, for a file 10% larger (the
    frames are lossless either way)."""
    with outputs.atomic_output(path) as temp:
        _save_png(temp, frame)


def _save_png(path, frame):
    Image.fromarray(np.asarray(frame, np.uint8)).save(path, format="PNG", compress_level=1)


def write_video(path, frames, fps, audio_source=None, replace=False):
    """Writes the uint8 [H, W, 3] frames of the iterable `frames` as one video at `path`, as they come, atomically
    (a temporary beside it, renamed when the iterable ends; an error raised by the iterable removes it): H.264
    yuv420p for H264_EXTENSIONS (the audio stream of `audio_source`, a video file, copied packet by packet), a
    looping GIF, or a folder of PNG frames (output_kind).

    Returns:
      Whether audio was copied.
    """
    kind = output_kind(path)
    if kind == "frames":
        with outputs.atomic_output(path.rstrip("/" + os.sep), directory=True, replace=replace) as temp:
            for index, frame in enumerate(frames):
                _save_png(os.path.join(temp, FRAME_NAME.format(index)), frame)
        return False
    if kind == "gif":
        with outputs.atomic_output(path, replace=replace) as temp:
            images = [Image.fromarray(np.asarray(frame, np.uint8)) for frame in frames]
            images[0].save(temp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                           duration=max(1, round(1000 / float(fps))))
        return False
    av = _av()
    with outputs.atomic_output(path, replace=replace) as temp:
        try:
            return _write_h264(temp, frames, fps, audio_source)
        except (av.error.FFmpegError, ValueError) as e:
            codec = _audio_codec(audio_source)
            if codec is None:
                raise
            raise UserInputError(f"cannot write {path!r} with the input's {codec} audio ({_reason(e)}); give an "
                                 "output container that takes it (.mkv takes most); the finished frames stay in the "
                                 "work folder beside the output") from None


def _audio_codec(source):
    """The name of the audio codec of the video file `source`, or None without one."""
    if source is None or os.path.isdir(source):
        return None
    with _av().open(source) as container:
        return container.streams.audio[0].codec_context.name if container.streams.audio else None


def _audio_packets(source):
    """(the audio stream, its packets) of the video file `source`; (None, []) without one. The container is
    left open for the packets' sake; the caller closes it."""
    av = _av()
    if source is None or os.path.isdir(source):
        return None, None, []
    container = av.open(source)
    if not container.streams.audio:
        container.close()
        return None, None, []
    stream = container.streams.audio[0]
    packets = [packet for packet in container.demux(stream) if packet.dts is not None]
    return container, stream, packets


def _write_h264(path, frames, fps, audio_source):
    av = _av()
    source, audio_in, packets = _audio_packets(audio_source)
    try:
        with av.open(path, mode="w") as container:
            video, audio, pending = None, None, list(packets)
            for index, array in enumerate(frames):
                if video is None:
                    video = container.add_stream("libx264", rate=fps)
                    video.width, video.height = array.shape[1], array.shape[0]
                    video.pix_fmt = "yuv420p"
                    video.options = {"crf": H264_CRF, "preset": H264_PRESET}
                    audio = container.add_stream_from_template(audio_in) if audio_in is not None else None
                frame = av.VideoFrame.from_ndarray(np.asarray(array, np.uint8), format="rgb24")
                frame.pts = index
                frame.time_base = fractions.Fraction(1) / fps
                for packet in video.encode(frame):
                    container.mux(packet)
                while pending and pending[0].pts is not None and pending[0].pts * pending[0].time_base <= index / fps:
                    _mux_audio(container, audio, pending.pop(0))
            if video is None:
                raise RuntimeError("no frame to write")
            for packet in video.encode():
                container.mux(packet)
            for packet in pending:
                _mux_audio(container, audio, packet)
    finally:
        if source is not None:
            source.close()
    return audio is not None


def _mux_audio(container, stream, packet):
    packet.stream = stream
    container.mux(packet)


class _Aborted(Exception):
    """Raised inside write_video's frames when a StreamingWriter is aborted, so that the temporary is removed."""


_END, _ABORT = object(), object()


class StreamingWriter:
    """write_video on a thread, fed frame by frame: the encoder works on one frame while the caller makes the
    next (PyAV and x264 release the GIL), instead of encoding every frame at the end.

    Use it as a context manager: put() each frame, then finish(); leaving the block by an exception aborts the
    write, and no output file is left. An error of the writer (an output container that cannot hold the input's
    audio, say) is raised by the next put() or by finish().
    """

    def __init__(self, path, fps, audio_source=None, replace=False, depth=4):
        self._queue = queue.Queue(depth)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tf_nst_encode")
        self._future = self._executor.submit(write_video, path, self._frames(), fps, audio_source, replace)

    def _frames(self):
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _Aborted()
            yield item

    def put(self, frame):
        """Queues one uint8 [H, W, 3] frame; waits while `depth` frames are queued."""
        self._put(np.asarray(frame, np.uint8))

    def _put(self, item):
        while True:
            if self._future.done():
                self._future.result()  # the writer's error
                raise RuntimeError("the video writer stopped before its frames ended")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self):
        """Ends the frames and waits for the file; returns write_video's answer (whether audio was copied)."""
        self._put(_END)
        return self._future.result()

    def abort(self):
        """Stops the write, removing its temporary; the writer's own error, if any, is not raised."""
        if not self._future.done():
            try:
                self._put(_ABORT)
            except Exception:  # pylint: disable=broad-except  # the writer failed meanwhile: nothing to stop
                pass
        concurrent.futures.wait([self._future])

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            self.abort()
        self._executor.shutdown(wait=True)
        return False


@dataclasses.dataclass(frozen=True)
class VideoPlan:
    """A checked video run: its input (probed), output, the frames' size, and its work folder."""

    info: VideoInfo
    output: str
    kind: str
    size: tuple
    work: str


WORK_SUFFIX = ".tf-nst-work"


def work_folder(output):
    """The folder beside `output` that holds a run's finished frames until the output is written."""
    output = os.path.abspath(output.rstrip("/" + os.sep))
    return os.path.join(os.path.dirname(output), f".{os.path.basename(output)}{WORK_SUFFIX}")


def plan_video(input_path, output, max_size=None, overwrite=False):
    """Checks a run's input and output before any work, and decides the frames' size.

    Raises:
      UserInputError: the output is the input (or inside a frames folder given as input), has an unknown
        extension, exists (a file, without `overwrite`; a folder of frames, always), or its folder cannot be
        written; or the input is not a readable clip (probe).
    """
    kind = output_kind(output)
    real_output, real_input = os.path.realpath(output.rstrip("/" + os.sep)), os.path.realpath(input_path)
    if real_output == real_input or real_output.startswith(real_input + os.sep):
        raise UserInputError(f"output {output!r} is the input {input_path!r} (or inside it); choose another output")
    if kind == "frames" and os.path.lexists(real_output):
        raise UserInputError(f"output folder {output!r} already exists; remove it or give a new folder name")
    if kind != "frames" and os.path.isdir(output):
        raise UserInputError(f"output {output!r} is a folder; give a file name such as styled.mp4")
    if kind != "frames" and os.path.exists(output) and not overwrite:
        raise UserInputError(f"output {output!r} already exists; pass --overwrite to replace it")
    info = probe(input_path)
    outputs.check_writable(os.path.dirname(real_output), "the video")
    size = frame_size(info.width, info.height, max_size, even=kind == "h264")
    files.check_min_side("a frame" if size == (info.width, info.height) else "a frame, as resized,", *size)
    return VideoPlan(info, output, kind, size, work_folder(output))


class WorkFolder:
    """A run's finished frames, frame_000000.npy on (WORK_FRAME_NAME), and the fingerprint of the run that wrote
    them (RUN_FILE).

    A rerun of the same command (same fingerprint) resumes after the last frame found in order; another run's
    folder is refused rather than mixed in.
    """

    RUN_FILE = "run.txt"

    def __init__(self, path, fingerprint):
        self.path = path
        self.fingerprint = fingerprint

    def prepare(self):
        """Creates the folder, or checks that it holds this run's frames; returns how many are finished."""
        run_file = os.path.join(self.path, self.RUN_FILE)
        if os.path.isfile(run_file):
            with open(run_file, encoding="ascii") as f:
                if f.read().strip() != self.fingerprint:
                    raise UserInputError(f"the work folder {self.path!r} holds the frames of another run (another "
                                         "input, style, model or settings); remove it to start again, or rerun the "
                                         "command that made it")
        else:
            os.makedirs(self.path, exist_ok=True)
            outputs.write_file(run_file, f"{self.fingerprint}\n".encode("ascii"))
        outputs.remove_stale_temps(self.path)
        count = 0
        while os.path.isfile(self.frame_path(count)):
            count += 1
        return count

    def frame_path(self, index):
        return os.path.join(self.path, WORK_FRAME_NAME.format(index))

    def write(self, index, frame):
        with outputs.atomic_output(self.frame_path(index)) as temp:
            with open(temp, "wb") as f:
                np.save(f, np.asarray(frame, np.uint8), allow_pickle=False)

    def read(self, index):
        return np.load(self.frame_path(index), allow_pickle=False)

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


def input_stamp(path):
    """The input's real path, size and modification time (a folder: of each frame file), as one string."""
    paths = files.list_images(path, kind="frames", contents="frames") if os.path.isdir(path) else [path]
    stats = [(os.path.realpath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    return repr(stats)
