"""Atomic, safe file I/O for everything a run writes.

Every file is written to a temporary name in the same folder and renamed into place, so a run
killed mid-write leaves either the old file or the new one, never half of one (plus the hidden
temporary `.NAME.XXXXXXXX.tmp`, which `remove_stale_temporaries` clears when the run resumes).
Nothing untrusted is unpickled: JSON and YAML (safe_load) for our own files,
torch.load(weights_only=True) for weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml


def _to_builtin(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> Path:
    """Call write(file_object) on a temporary file next to `path`, fsync it, rename it over `path`, fsync
    the folder (so the rename survives a power loss)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual permissions
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            _maybe_die_mid_write(path)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)
    return path


# atomic_write's temporary file: mkstemp(prefix=".NAME.", suffix=".tmp") puts 8 characters of tempfile's
# alphabet (lower-case letters, digits, "_") between them
_RANDOM_PART = r"\.[a-z0-9_]{8}\.tmp"
_TEMPORARY = re.compile(r"\..+" + _RANDOM_PART, re.DOTALL)


def temporaries_of(folder: str | Path, name: str) -> list[Path]:
    """The temporaries atomic_write left in `folder` when a write of folder/name was killed mid-way,
    `.NAME.XXXXXXXX.tmp` (plain files only, never a link; none when `folder` is no folder or a link)."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return []
    pattern = re.compile(re.escape(f".{name}") + _RANDOM_PART, re.DOTALL)
    return [p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_file() and not p.is_symlink()]


def not_a_folder(path: str | Path) -> bool:
    """Whether something other than a folder stands at path: a file, or a symbolic link to nothing (exists() is
    False for it, and mkdir then fails with "File exists")."""
    path = Path(path)
    return (path.exists() or path.is_symlink()) and not path.is_dir()


def remove_new_paths(new: list[Path], loggers: tuple[str | None, ...] = (None,)) -> None:
    """After a start was refused: remove the files and (now empty) folders in `new`, the paths this start
    created, so that a refused command leaves nothing behind. A log file among them is first detached from the
    `loggers` named (None: the root logger), so that a next start in the same process logs anew."""
    import logging

    targets = {Path(p).absolute() for p in new}
    for name in loggers:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) in targets:
                logger.removeHandler(handler)
                handler.close()
    for path in sorted(map(Path, new), key=lambda p: len(p.absolute().parts), reverse=True):  # files, then folders
        if path.is_file():
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove what atomic_write leaves behind when killed mid-write, `.NAME.XXXXXXXX.tmp`, in `folder` and its
    subfolders (symbolic links are not followed); returns the files removed. For a resume, before it writes
    anything: nothing else may be writing into the folder. Other hidden files stay (`.notes.txt`, `.x.tmp`)."""
    removed = []
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if _TEMPORARY.fullmatch(name) and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX: the directory entry is only on disk after this)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows cannot open folders; the rename stays atomic, only not yet durable
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and Windows) refuse fsync on a folder
        pass
    finally:
        os.close(fd)


_KILL_ENV = "NSGANETV2_TEST_KILL_DURING_WRITE"


def _maybe_die_mid_write(path: Path) -> None:
    """Test hook: `NSGANETV2_TEST_KILL_DURING_WRITE=NAME:N` SIGKILLs this process during the N-th write
    of a file whose name contains NAME, after the data is written and before the rename."""
    spec = os.environ.get(_KILL_ENV)
    if not spec or spec.rpartition(":")[0] not in path.name:
        return
    count = _write_counts.get(spec, 0) + 1
    _write_counts[spec] = count
    if count == int(spec.rpartition(":")[2]):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_write_counts: dict[str, int] = {}


def check_output_file(path: str | Path, flag: str) -> None:
    """Before a run's work: a ValueError naming `flag` when `path` cannot become a file (it is a folder, or a file
    stands where a folder on its way should be), so that the mistake costs one line, not the work and a traceback."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; give the file to write")
    if path.is_symlink() and not path.exists():  # atomic_write would replace the link with a file
        raise ValueError(f"{flag} {path}: is a broken symbolic link (to {os.readlink(path)})")
    check_output_folder(path.parent, f"{flag} {path}")


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text))


def write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, default=_to_builtin) + "\n")


def read_json(path: str | Path) -> Any:
    """Read our own JSON file; a corrupt or missing file raises ValueError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except OSError as e:  # a folder, no permission, ...
        raise ValueError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: corrupt JSON file ({e})") from None


#: what a refusal of text YAML cannot hold says to do (such text is nearly always a path; not "use a link": the
#: tools store paths resolved, links followed)
NOT_UTF8_HINT = "rename it, or copy it to a path with a UTF-8 name"


def non_utf8_text(obj: Any, where: str = "") -> tuple[str, str] | None:
    """(where, text) of the first string in `obj` (mapping keys and values, lists, nested) that is not UTF-8 text:
    a path with bytes of another encoding in its name, which Python holds as lone surrogates (b"\\xe9" as
    "\\udce9"). yaml.safe_dump writes one as an escape that safe_load then refuses. `where`: its keys, dotted."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return where, obj
        return None
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str) and non_utf8_text(key) is not None:
                return (f"{where} key" if where else "key"), key
            found = non_utf8_text(value, f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found = non_utf8_text(value, f"{where}[{i}]")
            if found is not None:
                return found
    return None


def shown_text(text: str) -> str:
    """Text for a message: the bytes of a name that is not UTF-8 as \\xNN (as `ls -b` shows them, where printing
    the text itself shows \\udcNN), other lone surrogates as \\udNNN."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte gives
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def check_yaml_text(obj: Any, what: str | Path) -> None:
    """A ValueError naming `what` (the file), the key and the text when `obj` holds text a YAML file cannot hold
    (non_utf8_text): written, it made a file that yaml refuses to read back (every --resume of a run refused
    its args.yaml as corrupt)."""
    found = non_utf8_text(obj)
    if found is not None:
        raise ValueError(f"{what}: {found[0]} {shown_text(found[1])}: not UTF-8 text, which a YAML file cannot hold "
                         f"(it could not be read back); {NOT_UTF8_HINT}")


def write_yaml(path: str | Path, obj: Any) -> Path:
    """A YAML file that read_yaml reads back: text it could not (see check_yaml_text) is refused, before anything
    is written."""
    obj = json.loads(json.dumps(obj, default=_to_builtin))  # numpy/Path -> builtins
    check_yaml_text(obj, path)
    return write_text(path, yaml.safe_dump(obj, sort_keys=False))


def file_identity(path: str | Path) -> dict[str, Any]:
    """{"size", "sha256"} of a file's bytes: what a run records of the weights it started with. Not the mtime,
    which a copy changes without changing the weights (and a retraining within a second may leave as it was)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:  # size and digest of the one file opened, even if another is renamed over it
        for block in iter(lambda: f.read(1 << 20), b""):  # hashlib.file_digest is Python 3.11+
            digest.update(block)
        return {"size": os.fstat(f.fileno()).st_size, "sha256": digest.hexdigest()}


def lock_name(tool: str) -> str:
    """The lock file a tool's process holds in the folder it writes (lock_folder)."""
    return f".{tool}.lock"


class FolderInUse(ValueError):
    """Another process holds the folder: said in one line, and nothing of that folder is removed or written."""


def lock_folder(folder: Path, tool: str) -> int | None:
    """An exclusive advisory lock on FOLDER/.TOOL.lock for as long as the returned descriptor is open: a second
    process of the tool on the same folder is a FolderInUse error instead of both writing the same files. The OS
    lets go when the holder dies, so a killed run can be resumed at once. The file holds the holder's pid. None
    (with a warning) where the file system cannot lock: the work goes on unguarded."""
    import fcntl
    import warnings

    path = folder / lock_name(tool)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise FolderInUse(f"{folder}: in use by another {tool} process (pid {holder if holder.isdigit() else 'unknown'}"
                          f"); wait for it or kill it") from None
    except OSError as e:  # no locks on this file system (some network ones)
        os.close(fd)
        warnings.warn(f"{path}: cannot lock ({e.strerror or e}); make sure no other {tool} process writes to "
                      f"{folder}", stacklevel=2)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def holding_lock(folder: Path, tool: str) -> Iterator[None]:
    """lock_folder's lock held for the `with` block."""
    fd = lock_folder(folder, tool)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (the C one is 4x faster on large latency tables) that refuses a key given twice in one
    mapping: yaml keeps the last value silently, so a hand-edited table or args.yaml would lose the other."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may be overridden by design
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base constructor says so
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice",
                                                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: corrupt YAML file ({' '.join(str(e).split())})") from None  # one line
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (YAML) file") from None


def save_torch(path: str | Path, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), mode="wb")


def load_torch(path: str | Path, map_location: str = "cpu") -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, never arbitrary code.

    argparse.Namespace is allowed too: timm's training checkpoints (and so the original NSGANetV2's
    fine-tuned ones) store their arguments as one, and unpickling it runs no code of the file's choosing."""
    import argparse

    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {'a folder, not a weight file' if path.is_dir() else 'weight file not found'}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for corrupt/unsafe files
        what = _not_a_checkpoint(path)  # else the unpickler's own failure on it: `KeyError: 101` for "hello world"
        raise ValueError(f"{path}: cannot load weights ({what or _load_failure(e)})") from None


def _not_a_checkpoint(path: Path) -> str | None:
    """'not a PyTorch checkpoint: ...' for a file that cannot be one, neither a zip archive (torch.save) nor a pickle
    (its legacy format) nor a tar file (its oldest); None when it might be one, or cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a zip archive's first entry, or an empty one's end
        return _not_a_torch_zip(path)
    if head.startswith(b"\x80") or head[257:262] == b"ustar":
        return None
    if not head:
        return "not a PyTorch checkpoint: an empty file"
    return f"not a PyTorch checkpoint: {'a text file' if _is_text(head) else 'neither a zip archive nor a pickle'}"


def _not_a_torch_zip(path: Path) -> str | None:
    """For a zip archive: 'not a PyTorch checkpoint: ...' when it holds no `data.pkl` one folder down, which
    torch.save always writes (torch's own message is 'file in archive is not in a subdirectory'); None when it
    does, or when the archive cannot be read (a corrupt checkpoint, left to torch's failure)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if any(name.count("/") == 1 and name.endswith("/data.pkl") for name in names):
        return None
    held = f"it holds {len(names)} file{'s' if len(names) != 1 else ''}" + (f", e.g. {names[0]}" if names else "")
    return f"not a PyTorch checkpoint: a zip archive without the data.pkl that torch.save writes ({held})"


def _is_text(head: bytes) -> bool:
    """Whether a file's first bytes are UTF-8 text (the read may have cut its last character)."""
    if b"\x00" in head:
        return False
    for cut in range(4):
        try:
            head[:len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def _load_failure(e: Exception) -> str:
    """What is wrong with a file torch.load refused, in one line (torch's own message is a page long and,
    for a corrupt file, suggests the unsafe weights_only=False)."""
    import errno
    import re

    text = str(e)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return (f"it holds a Python object of type {unsafe[1]}, which is not loaded because unpickling it could "
                f"run code; save only the tensors (the state dict) to load it here")
    # a zip archive cut short can also fail as a seek past its end (EINVAL)
    truncated = type(e).__name__ == "EOFError" or isinstance(e, OSError) and e.errno == errno.EINVAL
    if truncated or "Weights only load failed" in text or "PytorchStreamReader" in text:
        return "not a PyTorch weight file, or a corrupt or truncated one"
    first_line = (text.splitlines() or ["no message"])[0]  # an empty file gives an empty message
    return f"{type(e).__name__}: {first_line}"


def check_output_folder(folder: str | Path, what: str) -> None:
    """ValueError `<what>: ... is a file, not a folder` when `folder` cannot be made because it, or the
    nearest of its parents that exists, is a file, or `<what>: cannot write in ...` when that folder takes no
    files (no permission, a read-only file system): found before anything is written, instead of a traceback
    half-way through an export."""
    folder = Path(folder)
    # a link to nothing counts: exists() is False for it, and mkdir then fails with "File exists"
    in_the_way = next(p for p in (folder, *folder.parents) if p.exists() or p.is_symlink())  # "." or "/" at the latest
    if not in_the_way.exists():
        raise ValueError(f"{what}: {in_the_way} is a broken symbolic link (to {os.readlink(in_the_way)})")
    if not in_the_way.is_dir():
        raise ValueError(f"{what}: {in_the_way} is a file, not a folder")
    try:  # a real probe: os.access says yes to root even where the file system refuses (/sys, /proc)
        with tempfile.TemporaryFile(dir=in_the_way):  # unnamed where the file system allows: nothing left behind
            pass
    except OSError as e:
        raise ValueError(f"{what}: cannot write in {in_the_way} ({e.strerror or e})") from None
