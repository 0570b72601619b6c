# Shared fixtures of the bundlefs test suite: where the binaries are, the
# real Nix closures the tests build with nix-bin, and a helper that mounts
# bundlefs for real and checks that it unmounts cleanly.
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "fixtures"))

import bfsmount  # noqa: E402
import nixfix  # noqa: E402
from bfsmount import is_mounted  # noqa: E402,F401

# Daemons never ask the machine's binary caches (a test that wants one
# names it): a missing path is reported at once, with no network.
os.environ["NIX_CONFIG"] = "substituters =\n"
# The data path the suite runs its mounts in: the FUSE tree, unless
# tools/test runs a part of it again with kernel-native roots.
os.environ.setdefault("BUNDLEFS_TEST_DATA", "fuse")
NATIVE = os.environ["BUNDLEFS_TEST_DATA"] == "native"

BUILD = os.environ.get("BUNDLEFS_BUILD", os.path.join(ROOT, "build"))
BUNDLEFS = os.path.join(BUILD, "fs", "bundlefs")
BUNDLECTL = os.path.join(BUILD, "tools", "bundlectl")
STORE = "/nix/store"


def run(cmd, check=True, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(cmd, **kw)
    if check and p.returncode != 0:
        raise AssertionError(
            "%s exited %d\nstdout: %s\nstderr: %s"
            % (cmd, p.returncode, p.stdout[-2000:], p.stderr[-2000:])
        )
    return p


def wait_for(cond, what, timeout=10):
    """Waits until cond() holds; fails with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def closure_files(paths):
    """Every file (not symlink) under the given store paths, in walk order."""
    for top in paths:
        for dirpath, _, names in os.walk(top):
            for name in names:
                p = os.path.join(dirpath, name)
                if not os.path.islink(p):
                    yield p


def stop_mount(m):
    """SIGTERM to whichever daemon serves m now (after a failover, not the
    one the test started); the mount goes."""
    pid, _ = m.pids()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not is_mounted(m.mountpoint), "the mount stays after SIGTERM")
    if m.proc.poll() is None:
        assert m.proc.wait(10) == 0


def bundlectl(*args, check=True, **kw):
    return run([BUNDLECTL, *args], check=check, **kw)


def write_spec(tmp_path, text, name="spec.conf"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def abort_mount(path):
    """Aborts the FUSE connection of the mount at path (through fusectl),
    which ends a daemon that can no longer answer, and detaches it."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                minor = fields[2].split(":")[1]
                with open("/sys/fs/fuse/connections/%s/abort" % minor, "w") as a:
                    a.write("1")
    subprocess.run(["umount", "-l", path], stderr=subprocess.DEVNULL)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "c_checker: runs tests/data/keycases.json through the built bundlectl")


class Mount(bfsmount.Mount):
    """A running `bundlefs -f` (the one under test) on a fresh mountpoint."""

    def __init__(self, mountpoint, spec, args=(), env=None):
        super().__init__(BUNDLEFS, mountpoint, spec, args, env)


@pytest.fixture
def mount(tmp_path):
    """mount(spec_path, *args) starts bundlefs; at teardown it must stop
    with SIGTERM, exit 0 and leave nothing mounted."""
    mounts = []

    def start(spec, *args, name="mnt", env=None):
        m = Mount(tmp_path / name, spec, args, env)
        mounts.append(m)
        return m

    yield start
    failures = []
    for m in mounts:
        if m.proc.poll() is None:
            rc = m.stop()
            if rc != 0:
                failures.append("bundlefs exited %d: %s" % (rc, m.stderr()))
    # (After every stop: a test may mount again where it mounted before.)
    for m in mounts:
        if is_mounted(m.mountpoint):
            failures.append("%s still mounted" % m.mountpoint)
        m.cleanup()
    assert not failures, failures


@pytest.fixture(scope="session")
def nix():
    return nixfix


def snapshot(paths):
    """Type, mode, owner, times, size, content hash or link target of every
    entry under the given store paths."""
    import hashlib
    out = {}
    for top in paths:
        for dirpath, dirs, files in os.walk(top):
            for name in [None] + dirs + files:
                p = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(p)
                info = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size, st.st_ino)
                if os.path.islink(p):
                    info += (os.readlink(p),)
                elif os.path.isfile(p):
                    with open(p, "rb") as f:
                        info += (hashlib.sha256(f.read()).hexdigest(),)
                out[p] = info
    return out


@pytest.fixture(scope="session", autouse=True)
def store_untouched(nix):
    """The whole suite must leave the served store paths exactly as they
    were: not a byte, mode or time changed."""
    paths = sorted(set(nix.closure(nix.build("app"))) | set(nix.closure(nix.build("realistic"))))
    before = snapshot(paths)
    yield
    after = snapshot(paths)
    changed = [p for p in before if before[p] != after.get(p)]
    assert not changed and before.keys() == after.keys(), changed[:10]


@pytest.fixture(scope="session")
def app(nix):
    """The `app` closure: busybox, glibc, a relinked C program, a script
    and symlinks referring to each other."""
    return nix.build("app")


@pytest.fixture(scope="session")
def tiny(nix):
    return nix.build("tiny")


class Runc:
    """Runs containers with Debian's runc, deleting them afterwards."""

    def __init__(self, root):
        self.root = root
        self.ids = []

    def run(self, bundle, timeout=60):
        cid = "bfs-" + uuid.uuid4().hex[:12]
        self.ids.append(cid)
        return subprocess.run(
            ["runc", "--root", self.root, "run", "-b", bundle, cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def start(self, bundle):
        """Starts a container and returns at once (a Popen); its output is
        read with communicate()."""
        cid = "bfs-" + uuid.uuid4().hex[:12]
        self.ids.append(cid)
        return subprocess.Popen(["runc", "--root", self.root, "run", "-b", bundle, cid],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def cleanup(self):
        for cid in self.ids:
            subprocess.run(["runc", "--root", self.root, "delete", "-f", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Crun(Runc):
    """Runs containers with Debian's crun. crun refuses this machine's
    hybrid cgroup layout: each run gets a mount namespace of its own with
    cgroup2 on /sys/fs/cgroup, and crun manages no cgroup. The namespace
    takes later mounts from the host's shared ones (a slave), as a
    runtime's namespace on a systemd host does."""

    def run(self, bundle, timeout=60):
        cid = "bfs-" + uuid.uuid4().hex[:12]
        script = ('mount -t cgroup2 none /sys/fs/cgroup && exec crun --root "$1" '
                  '--cgroup-manager=disabled run -b "$2" "$3"')
        return subprocess.run(
            ["unshare", "-m", "--propagation", "slave", "sh", "-c", script, "sh", self.root,
             bundle, cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def cleanup(self):
        pass  # each container's state goes with its namespace's run


@pytest.fixture
def runc(tmp_path):
    r = Runc(str(tmp_path / "runc-state"))
    yield r
    r.cleanup()


@pytest.fixture(params=["runc", "crun"])
def runtime(request, tmp_path):
    """Each OCI runtime in turn."""
    r = (Runc if request.param == "runc" else Crun)(str(tmp_path / (request.param + "-state")))
    yield r
    r.cleanup()
