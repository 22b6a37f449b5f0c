"""codebase/io.py: what a write killed half-way leaves behind, and its removal on resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codebase.io import file_identity, read_yaml, remove_new_paths, remove_stale_temporaries
from tests.data_fixtures import unwritable_folder

ROOT = Path(__file__).resolve().parents[1]


def killed_write(path: Path, n: int = 1) -> Path:
    """Write `path` n times in a process SIGKILLed during the n-th write (the test hook of atomic_write); returns
    the temporary file the kill left beside it."""
    code = f"from codebase.io import write_text\nfor i in range({n}): write_text({str(path)!r}, str(i))"
    env = {**os.environ, "NSGANETV2_TEST_KILL_DURING_WRITE": f"{path.name}:{n}"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, timeout=120)
    assert out.returncode == -9
    (left,) = path.parent.glob(f".{path.name}.*.tmp")
    return left


def test_only_the_temporaries_of_killed_writes_are_removed(tmp_path):
    run = tmp_path / "run"
    stale = [killed_write(run / "checkpoint.pth", 2), killed_write(run / "iter_1" / "net_0.stats"),
             killed_write(run / ".hidden.json")]
    assert (run / "checkpoint.pth").read_text() == "0"  # the write before the killed one is complete
    # hidden files of the user's, and names a mkstemp(prefix=".NAME.", suffix=".tmp") never makes
    kept = [".notes.txt", ".x.tmp", ".model.pth.tmp", "model.pth.abcd1234.tmp", ".model.pth.ABCD1234.tmp",
            ".model.pth.abc.tmp", ".model.pth.abcd12345.tmp", ".model.pth.abcd1234.tmp.bak", ".abcd1234.tmp"]
    for name in kept:
        (run / name).write_text("mine")
    (run / "iter_1" / ".notes.txt").write_text("mine")
    (run / ".dir.abcd1234.tmp").mkdir()  # a folder of that name is not a file the writer left
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".a.abcd1234.tmp").write_text("not in the run")
    (run / "linked").symlink_to(outside)  # links lead out of the run folder: not followed
    (run / ".b.abcd1234.tmp").symlink_to(outside / ".a.abcd1234.tmp")

    assert sorted(remove_stale_temporaries(run)) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all((run / name).read_text() == "mine" for name in kept)
    assert (run / "iter_1" / ".notes.txt").is_file() and (run / ".dir.abcd1234.tmp").is_dir()
    assert (outside / ".a.abcd1234.tmp").is_file() and (run / ".b.abcd1234.tmp").is_symlink()
    assert (run / "checkpoint.pth").read_text() == "0"
    assert remove_stale_temporaries(run) == []
    assert remove_stale_temporaries(tmp_path / "none") == []  # no folder: nothing to do


def test_remove_new_paths_takes_back_a_refused_start_and_nothing_else(tmp_path):
    import logging

    run, log = tmp_path / "run", tmp_path / "run" / "log.txt"
    run.mkdir()
    (run / "args.yaml").write_text("seed: 0\n")
    logger = logging.getLogger("test_remove_new_paths")
    handler = logging.FileHandler(log)
    logger.addHandler(handler)
    logger.warning("started")
    remove_new_paths([run, run / "args.yaml", log], loggers=("test_remove_new_paths",))
    assert not run.exists()  # files first, then the emptied folder, whatever the order given
    assert handler not in logger.handlers and handler.stream is None  # detached and closed

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("not made by this start")
    (kept / "args.yaml").write_text("seed: 0\n")
    remove_new_paths([kept, kept / "args.yaml", kept / "log.txt"])  # a log that was never written: skipped
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]  # the folder stays: it holds a file of the user's


def test_check_output_folder_refuses_a_broken_link_on_the_way(tmp_path):
    """A symbolic link to nothing where the folder (or a folder on its way) goes: mkdir raised FileExistsError
    (a traceback from post_search --save, plot_runs --out), since exists() is False for it."""
    from codebase.io import check_output_folder

    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    for folder in (tmp_path / "gone", tmp_path / "gone" / "sub"):
        with pytest.raises(ValueError, match=f"^--save {folder}: {tmp_path / 'gone'} is a broken symbolic link"):
            check_output_folder(folder, f"--save {folder}")
    (tmp_path / "real").mkdir()
    (tmp_path / "ok").symlink_to(tmp_path / "real")
    check_output_folder(tmp_path / "ok" / "sub", "--save")  # a link to a folder is a folder


def test_check_output_folder_refuses_a_folder_that_takes_no_files(tmp_path):
    """post_search --save /sys/x and plot_runs --out /sys/x.png were a PermissionError traceback (exit 1)
    after the search result had been read; os.access says yes to root there."""
    from codebase.io import check_output_folder

    locked = unwritable_folder(tmp_path)
    for folder in (locked, locked / "out" / "sub"):
        with pytest.raises(ValueError, match=f"^--save {folder}: cannot write in {locked} \\("):
            check_output_folder(folder, f"--save {folder}")
    check_output_folder(tmp_path / "new" / "sub", "--save")  # a folder that takes files: no error
    assert sorted(p.name for p in tmp_path.iterdir()) == (["locked"] if locked.parent == tmp_path else [])


def test_read_yaml_refuses_a_key_given_twice_and_keeps_merges(tmp_path):
    # an args.yaml with `seed` twice was read with the last value, the first silently lost
    (tmp_path / "args.yaml").write_text("seed: 1\nn_doe: 100\nseed: 2\n")
    with pytest.raises(ValueError, match=r"args.yaml: corrupt YAML file \(key 'seed' given twice .*line 3"):
        read_yaml(tmp_path / "args.yaml")
    (tmp_path / "nested.yaml").write_text("a:\n  x: 1\nb:\n  x: 2\n  y: 3\n  y: 4\n")
    with pytest.raises(ValueError, match="key 'y' given twice"):
        read_yaml(tmp_path / "nested.yaml")
    # equal keys in different mappings, and a merge overridden by an explicit key, are valid YAML
    (tmp_path / "ok.yaml").write_text("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\nd: {x: 4}\n")
    assert read_yaml(tmp_path / "ok.yaml") == {"base": {"x": 1, "y": 2}, "c": {"x": 3, "y": 2}, "d": {"x": 4}}


def test_file_identity_is_hashlibs_sha256_and_the_size_and_follows_one_changed_byte(tmp_path):
    import hashlib

    data = os.urandom(3 << 20) + b"tail"  # several read blocks and a partial one
    path = tmp_path / "w.pth"
    path.write_bytes(data)
    assert file_identity(path) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    path.write_bytes(data[:-1] + b"T")
    assert file_identity(path)["size"] == len(data)
    assert file_identity(path)["sha256"] == hashlib.sha256(data[:-1] + b"T").hexdigest() != \
        hashlib.sha256(data).hexdigest()


def test_write_yaml_refuses_text_that_yaml_cannot_read_back_before_writing(tmp_path):
    # a --data folder named in another encoding (b"/tmp/d\xe9ta", held as "\udce9") was written as "\uDCE9", which
    # safe_load refuses: every --resume of that run failed with "corrupt YAML file"
    from codebase.io import write_yaml

    data = os.fsdecode(b"/tmp/d\xe9ta")
    for obj, where in (({"seed": 1, "data": data}, "data"), ({"identity": {"path": data}}, "identity.path"),
                       ({"paths": ["a", data]}, r"paths\[1\]"), ({data: 1}, "key")):
        with pytest.raises(ValueError, match=rf"^{tmp_path}/args.yaml: {where} /tmp/d\\xe9ta: not UTF-8 text, which "
                                             r"a YAML file cannot hold .*; rename it, or copy it"):
            write_yaml(tmp_path / "args.yaml", obj)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary either
    write_yaml(tmp_path / "args.yaml", {"data": "/tmp/café 😀", "n": [1, 2]})  # UTF-8 beyond ASCII is fine
    assert read_yaml(tmp_path / "args.yaml") == {"data": "/tmp/café 😀", "n": [1, 2]}
