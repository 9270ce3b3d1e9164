"""Writing outputs: folders proved writable before the work, atomic files and folders with the modes the umask
gives, one-line write errors, and the temporaries of killed processes cleaned up.

Nothing here imports TensorFlow, so the command line proves its outputs writable before TensorFlow loads.
"""

import contextlib
import errno
import os
import re
import secrets
import shutil

from tf_nst.errors import UserInputError
from tf_nst.errors import WriteError


# Temporary names start with this and the writing process's id, so that a later run can tell the leftovers
# of a killed process (kill -9, power loss) from another live process's work, and remove them.
TEMP_PREFIX = ".tmp-"
_TEMP_NAME = re.compile(r"^\.tmp-(\d+)-")


def temp_path(folder, suffix=""):
    """A new temporary path in `folder`, named .tmp-<pid>-<random><suffix> (nothing is created)."""
    return os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{suffix}")


def remove_stale_temps(folder):
    """Removes the temporary files and folders in `folder` whose writing process is gone; returns them.

    Only names made by temp_path are considered, and only when no process with their id runs here.
    """
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = _TEMP_NAME.match(name)
        if not match or _process_alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError:
            pass  # another run removed it first, or it is not ours to remove
    return removed


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def describe_os_error(error):
    """The cause of an OSError in words, with the path it names: 'Not a directory: 'a/b''."""
    cause = error.strerror or type(error).__name__
    return f"{cause}: {error.filename!r}" if error.filename else cause


# TensorFlow's op text around an I/O error's cause: "{{function_node __wrapped__SaveV2_...}} PATH; No space left on
# device [Op:SaveV2]".
_TF_FUNCTION_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_TF_OP = re.compile(r"\s*\[Op:[^\]]*\]$")


def describe_write_error(error):
    """The cause of an OSError (describe_os_error) or of a TensorFlow I/O error (tf.errors.OpError, read by its
    `message`), in one line, without TensorFlow's {{function_node ...}} and [Op:...] text."""
    if isinstance(error, OSError):
        return describe_os_error(error)
    text = (getattr(error, "message", None) or str(error)).strip()
    text = _TF_OP.sub("", _TF_FUNCTION_NODE.sub("", text.splitlines()[0] if text else ""))
    return text or type(error).__name__


def check_writable(folder, what="outputs"):
    """Proves, before any work, that files can be created in `folder`: creates it (and its parents), writes
    and removes a probe file. Folders it had to create are removed again (the writers create them), so a
    later user error leaves nothing behind. Also removes stale temporary files there (remove_stale_temps).

    Raises:
      UserInputError: the folder cannot be created or written; the message names it and the cause.
    """
    shown, folder = folder or ".", os.path.abspath(folder or ".")
    created = _missing_folders(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale_temps(folder)
        probe = temp_path(folder, ".probe")
        with open(probe, "xb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UserInputError(f"cannot write {what} to {shown!r} ({describe_os_error(e)}); choose a folder "
                             "you can write to") from None
    finally:
        for path in created:  # deepest first
            try:
                os.rmdir(path)
            except OSError:
                pass  # never made, or another process wrote into it meanwhile


def _missing_folders(folder):
    """The folders from `folder` up to the first one that exists, deepest first."""
    missing = []
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def check_writable_files(paths, what="outputs"):
    """check_writable for the folder of every path in `paths`, each folder once."""
    for folder in dict.fromkeys(os.path.dirname(path) or "." for path in paths):
        check_writable(folder, what)


def umask():
    """The process umask, read from /proc where it can be (os.umask can only read it by changing it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path, directory=False, replace=True):
    """Yields a temporary path beside `path` to write a file (or, with `directory`, a folder) into; on success
    gives it the mode a plain open()/mkdir() would (0o666/0o777 less the umask), fsyncs it and moves it to
    `path`. On any failure or interruption the temporary is removed and the exception propagates.

    Without `replace`, a file that appeared at `path` while the work ran (another run given the same output)
    is never replaced: the file is hard-linked into place, which fails if `path` exists (a plain rename only
    where the filesystem has no hard links). A folder is never moved over an existing one either way.

    Raises:
      OutputAppearedError: `path` appeared meanwhile; the finished result is kept beside it (the error says
        where), and what is at `path` is left as it was.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    temp = temp_path(parent, "-" + os.path.basename(path))  # keeps every extension (.weights.h5) for writers
    try:
        if directory:
            os.mkdir(temp)
        yield temp
        os.chmod(temp, (0o777 if directory else 0o666) & ~umask())
        for file_path in _files_in(temp) if directory else (temp,):
            _fsync(file_path)
        if directory:
            _rename_folder(temp, path)
        elif replace:
            os.replace(temp, path)
        else:
            _move_new(temp, path)
        _fsync(parent, os.O_RDONLY | os.O_DIRECTORY)
    except BaseException:
        if os.path.isdir(temp) and not os.path.islink(temp):
            shutil.rmtree(temp, ignore_errors=True)
        elif os.path.lexists(temp):
            os.remove(temp)
        raise


# What os.link raises where a filesystem has no hard links (FAT, some network and FUSE filesystems).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


def _move_new(temp, path):
    """Moves the file `temp` to `path` unless something is there; else OutputAppearedError, the result kept."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise OutputAppearedError(path, _keep(temp, path)) from None
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):  # no hard links: only a check just before the rename is possible
            raise OutputAppearedError(path, _keep(temp, path)) from None
        os.rename(temp, path)
        return
    os.remove(temp)


def _rename_folder(temp, path):
    try:
        os.rename(temp, path)  # fails onto a file or a non-empty folder (an empty one holds nothing to lose)
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise
        raise OutputAppearedError(path, _keep(temp, path)) from None


def _keep(temp, path):
    """Renames the finished temporary `temp` to a new name beside `path` that no cleanup removes; returns it."""
    stem, extension = os.path.splitext(path) if os.path.isfile(temp) else (path, "")
    while True:
        kept = f"{stem}-kept-{secrets.token_hex(3)}{extension}"
        if not os.path.lexists(kept):
            os.rename(temp, kept)
            return kept


class OutputAppearedError(WriteError):
    """An output that did not exist when the run started appeared before its result was moved there (another
    run given the same output, without --overwrite): one line and exit status 1, the finished result kept."""

    def __init__(self, path, kept):
        super().__init__(f"{path!r} appeared while this run was working (another run with the same output?) and "
                         f"was left as it is; this run's result is kept at {kept!r}")
        self.path, self.kept = path, kept


def _files_in(folder):
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]


def _fsync(path, flags=os.O_RDONLY):
    handle = os.open(path, flags)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_error(path, error):
    """The WriteError for an OSError met while writing `path`."""
    return WriteError(f"cannot write {path!r}: {describe_os_error(error)}; nothing was written there")


def write_file(path, data, replace=True):
    """Writes bytes atomically (atomic_output): no reader ever sees half a file, and a failure leaves none.

    Args:
      path: the destination.
      data: the bytes.
      replace: whether a file at `path` may be replaced; without it, one that appeared since the run checked
        the path is kept (atomic_output).

    Raises:
      WriteError: the file could not be written (disk full, read-only, no permission); nothing is left.
      OutputAppearedError: `path` appeared meanwhile (without `replace`); the bytes are kept beside it.
    """
    try:
        with atomic_output(path, replace=replace) as temp, open(temp, "wb") as f:
            f.write(data)
    except OSError as e:
        raise write_error(path, e) from None


def fallback_folders():
    """Where a finished result goes when its own path cannot be written: the system temp folder
    (tempfile.gettempdir: $TMPDIR, else /tmp), then the current folder; each once."""
    import tempfile  # pylint: disable=import-outside-toplevel

    return list(dict.fromkeys(os.path.abspath(folder) for folder in (tempfile.gettempdir(), os.getcwd())))


def write_fallback(path, data, folders=None):
    """Writes `data`, which could not be written to `path`, to a new file named after it in the first of
    `folders` (default: fallback_folders) that takes it, so that hours of work are not lost to a full disk.

    Returns:
      (the path written, or None where every folder failed; [(folder, its OSError)] of the folders that failed).
    """
    stem, extension = os.path.splitext(os.path.basename(path))
    failed = []
    for folder in fallback_folders() if folders is None else folders:
        kept = os.path.join(folder, f"{stem}-kept-{secrets.token_hex(3)}{extension}")
        try:
            with atomic_output(kept, replace=False) as temp, open(temp, "wb") as f:
                f.write(data)
            return kept, failed
        except OSError as e:  # OutputAppearedError (a WriteError) cannot happen: the name is new
            failed.append((folder, e))
    return None, failed


# Locks this process holds: {lock file path: [its descriptor, how many holders]}, so that the command line and
# the library function it calls can both take the lock of one folder.
_HELD_LOCKS = {}


class FolderInUseError(UserInputError):
    """Another process holds the folder's lock (folder_lock): one line and exit status 2."""


@contextlib.contextmanager
def folder_lock(folder, name=".lock", what="folder"):
    """Holds an exclusive lock (fcntl.flock) on the file `name` in `folder` for the block; creates the folder.

    The lock file holds the holder's process id and is removed when the lock is released; a process that
    opened it just before finds, once it holds its lock, that the name no longer leads to its file and tries
    again. The lock dies with its process (kill -9 included). Taking it again in the same process nests.

    Raises:
      FolderInUseError: another process holds the lock; the message names it, and `what` the folder.
    """
    path = os.path.join(os.path.abspath(folder), name)
    if path in _HELD_LOCKS:
        _HELD_LOCKS[path][1] += 1
        try:
            yield path
        finally:
            _HELD_LOCKS[path][1] -= 1
        return
    created = _missing_folders(os.path.dirname(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle = _acquire(path, folder, what)
    _HELD_LOCKS[path] = [handle, 1]
    try:
        yield path
    finally:
        del _HELD_LOCKS[path]
        try:
            os.remove(path)  # while still held: see the docstring
        finally:
            os.close(handle)
        for created_folder in created:  # deepest first; only those the lock made and left empty
            try:
                os.rmdir(created_folder)
            except OSError:
                break


def _acquire(path, folder, what):
    import fcntl  # pylint: disable=import-outside-toplevel  # POSIX only: imported where it is used

    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode("ascii", "replace").strip()
            os.close(handle)
            process = f"process {holder}" if holder.isdigit() else "another process"
            raise FolderInUseError(f"{what} {folder!r} is in use by another run ({process} holds {path!r}); wait "
                                   f"for it to finish, or give another {what}") from None
        except BaseException:
            os.close(handle)
            raise
        try:
            same = os.path.samestat(os.fstat(handle), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"{os.getpid()}\n".encode("ascii"), 0)
            return handle
        os.close(handle)  # the holder released and removed it between our open and our lock: again
