# bundlectl's command line: help, version, usage errors, and materialize,
# which writes a bundle by copying (the buildContainer way) and leaves
# nothing behind when it fails.
import os
import subprocess

import pytest

from conftest import BUNDLECTL, bundlectl, run, write_spec

COMMANDS = ["check", "config", "closure", "materialize"]


@pytest.mark.parametrize("cmd", [None] + COMMANDS)
def test_help_and_version(cmd):
    pre = [cmd] if cmd else []
    h = bundlectl(*pre, "--help")
    assert h.stdout.startswith(b"usage: bundlectl")
    assert b"--store-dir" in h.stdout
    v = bundlectl(*pre, "--version")
    assert v.stdout.startswith(b"bundlectl ")


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["check"], ["config", "x"],
                                  ["closure", "a", "b", "c"], ["check", "--bogus", "x"],
                                  ["--store-dir", "relative", "check", "x"]])
def test_usage_errors(argv):
    p = bundlectl(*argv, check=False)
    assert p.returncode == 2
    assert p.stderr


@pytest.mark.parametrize("value", ["0", "-1", "x", "1e9", "nan", "inf", ""])
def test_a_timeout_is_some_seconds(value):
    # --timeout SECONDS, for the commands that talk to a daemon: a number
    # above 0, at most a day; checked before anything is asked.
    for cmd in (["status", "--timeout", value, "/nonexistent"],
                ["prune", "--timeout", value, "--state-dir", "/nonexistent"]):
        p = bundlectl(*cmd, check=False)
        assert p.returncode == 2
        assert p.stderr.decode().startswith(
            "bundlectl: --timeout needs a number of seconds, above 0 and at most 86400\n")
    p = bundlectl("status", "--timeout", check=False)
    assert p.returncode == 2 and b"--timeout needs a number of seconds" in p.stderr
    # (Commands that ask no daemon have none.)
    p = bundlectl("check", "--timeout", "5", "x", check=False)
    assert p.returncode == 2 and p.stderr.startswith(b"bundlectl: unknown option --timeout")


def test_unknown_bundle(tmp_path):
    spec = write_spec(tmp_path, "[a]\nargs = /bin/true\n")
    p = bundlectl("config", spec, "b", check=False)
    assert p.returncode == 1
    assert p.stderr.decode() == 'bundlectl: %s: no bundle named "b"\n' % spec


def tree(root):
    """Names, types, modes, sizes, contents and link targets of a tree."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", st.st_mode & 0o7777, st.st_size, f.read())
    return out


def test_materialize_copies_the_closure(tmp_path, nix, app):
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\nmount = /data/x bind /srv\n" % app)
    out = tmp_path / "bundle"
    bundlectl("materialize", spec, "a", str(out))
    assert (out / "config.json").read_bytes() == bundlectl("config", spec, "a").stdout
    rootfs = out / "rootfs"
    assert sorted(os.listdir(rootfs)) == ["data", "dev", "nix", "proc", "sys"]
    assert sorted(os.listdir(rootfs / "nix" / "store")) == sorted(
        os.path.basename(p) for p in nix.closure(app))
    for p in nix.closure(app):
        assert tree(p) == tree(str(rootfs) + p)
        assert os.lstat(p).st_mtime == os.lstat(str(rootfs) + p).st_mtime
    # the copy runs
    r = run(["chroot", str(rootfs), app + "/bin/app"])
    assert b"Hello from bundlefs!" in r.stdout


def test_materialize_refuses_existing_dir(tmp_path, app):
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\n" % app)
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep").write_text("mine")
    p = bundlectl("materialize", spec, "a", str(out), check=False)
    assert p.returncode == 1
    assert b"File exists" in p.stderr
    assert os.listdir(out) == ["keep"]


def test_materialize_failure_leaves_nothing(tmp_path, app):
    # A 1 MiB tmpfs fills up halfway through the copy.
    small = tmp_path / "small"
    small.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)])
    try:
        spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\n" % app)
        p = bundlectl("materialize", spec, "a", str(small / "bundle"), check=False)
        assert p.returncode == 1
        assert b"No space left on device" in p.stderr
        assert os.listdir(small) == []
    finally:
        run(["umount", str(small)])
