# Rootless: a user who is not root mounts a spec with bundlefs (through
# fusermount3) and runs its bundles with rootless runc, in a user
# namespace: a read-only bundle served by the FUSE tree, and a writable
# one whose root is a fuse-overlayfs the daemon runs as the user
# (fs/fuseovl.h), with its changes in the user's state directory, never
# in the store. Unmounting with a plain `fusermount3 -u` takes the
# writable roots and their fuse-overlayfs processes with it.
import glob
import json
import os
import pwd
import subprocess
import time
import uuid

import pytest

import bfsmount
from conftest import BUNDLECTL, BUNDLEFS, STORE, is_mounted, wait_for
from test_nonroot import USER, fuse_for_all, home, readonly_copy_of_the_database  # noqa: F401

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v fuse-overlayfs"], stdout=subprocess.DEVNULL).returncode,
    reason="fuse-overlayfs is not installed (tools/deps installs it)")


def user_env(home):
    """What the user's session would have: a runtime directory of their
    own (XDG_RUNTIME_DIR, 0700), where bundlefs puts its writable roots."""
    xdg = os.path.join(home, "xdg")
    os.makedirs(xdg, exist_ok=True)
    os.chmod(xdg, 0o700)
    pw = pwd.getpwnam(USER)
    os.chown(xdg, pw.pw_uid, pw.pw_gid)
    return {"XDG_RUNTIME_DIR": xdg}


def as_user(cmd, env=None, timeout=60, **kw):
    pre = ["env"] + ["%s=%s" % kv for kv in (env or {}).items()]
    return subprocess.run(["runuser", "-u", USER, "--", *pre, *cmd], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)


def out(p, m=None):
    """p's output; p must have succeeded (else its stderr, and the
    daemon's, say why)."""
    assert p.returncode == 0, p.stderr.decode() + (m.stderr() if m else "")
    return p.stdout.decode()


class RootlessMount:
    """bundlefs -f run by USER in its environment; stderr kept."""

    def __init__(self, home, spec, env, *args):
        self.home, self.env = home, env
        self.mnt = os.path.join(home, "mnt")
        self.state = os.path.join(home, "state")
        os.makedirs(self.mnt, exist_ok=True)
        pw = pwd.getpwnam(USER)
        os.chown(self.mnt, pw.pw_uid, pw.pw_gid)
        self.err = open(os.path.join(home, "stderr"), "w+")
        pre = ["env"] + ["%s=%s" % kv for kv in env.items()]
        self.proc = subprocess.Popen(
            ["runuser", "-u", USER, "--", *pre, BUNDLEFS, "-f", "--gcroots", "none",
             "--state-dir", self.state, *args, self.mnt, spec],
            stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + 10
        while not is_mounted(self.mnt):
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "did not mount: " + self.stderr()
            time.sleep(0.01)

    def stderr(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def status(self):
        p = as_user([BUNDLECTL, "status", "--json", self.mnt])
        return {b["name"]: b for b in json.loads(out(p))["bundles"]}

    def cleanup(self):
        if self.proc.poll() is None:
            as_user(["fusermount3", "-u", "-z", self.mnt])
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for point in fuse_overlays(self.state):
            as_user(["fusermount3", "-u", "-z", point])


class Runc:
    """Rootless runc, run by USER with a state directory of its own."""

    def __init__(self, home, env):
        self.root, self.env = os.path.join(home, "runc"), env
        self.ids = []

    def run(self, bundle):
        cid = "rl-" + uuid.uuid4().hex[:10]
        self.ids.append(cid)
        return as_user(["runc", "--root", self.root, "run", "-b", bundle, cid], self.env)

    def start(self, bundle):
        """Starts a container and returns at once (a Popen)."""
        cid = "rl-" + uuid.uuid4().hex[:10]
        self.ids.append(cid)
        pre = ["env"] + ["%s=%s" % kv for kv in self.env.items()]
        return subprocess.Popen(["runuser", "-u", USER, "--", *pre, "runc", "--root", self.root,
                                 "run", "-b", bundle, cid], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def cleanup(self):
        for cid in self.ids:
            as_user(["runc", "--root", self.root, "delete", "-f", cid], self.env)


def fuse_overlays(state):
    """Mount points (this namespace) of fuse-overlayfs roots writing in `state`."""
    points = []
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        rest = line.split(" - ")[1].split()
        if rest[0] == "fuse.fuse-overlayfs" and rest[1].startswith(state + "/"):
            points.append(fields[4])
    return points


def fuse_overlayfs_processes(state):
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            args = open(cmdline, "rb").read().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"fuse-overlayfs") and any(
                ("upperdir=" + state + "/").encode() in a for a in args):
            found.append(cmdline.split("/")[2])
    return found


def bundle_for(m, name):
    """The bundle runc runs, as bundlefs serves it: its config.json is
    rootless (the mount's owner is not root), a user namespace mapping
    root to the owner, as `runc spec --rootless` writes it."""
    cfg = json.loads(out(as_user(["cat", os.path.join(m.mnt, name, "config.json")])))
    pw = pwd.getpwnam(USER)
    types = [n["type"] for n in cfg["linux"]["namespaces"]]
    assert "user" in types and "network" not in types, types
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": pw.pw_uid, "size": 1}]
    assert cfg["linux"]["gidMappings"] == [{"containerID": 0, "hostID": pw.pw_gid, "size": 1}]
    assert not any(o.startswith(("gid=", "uid=")) for mt in cfg["mounts"]
                   for o in mt.get("options") or [])
    return os.path.join(m.mnt, name)


def test_rootless_runc_runs_a_read_only_and_a_writable_bundle(fuse_for_all, home, nix, tiny):
    bb = [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]
    db = readonly_copy_of_the_database(home)
    spec = os.path.join(home, "spec.conf")
    marker = "made-in-a-container-" + uuid.uuid4().hex[:8]
    with open(spec, "w") as f:
        f.write("[ro]\nargs = %s/bin/sh -c 'cat /proc/self/uid_map; id -u; ls /'\n"
                "readonly = true\n"
                "[w]\nargs = %s/bin/sh -c 'cat /f 2>/dev/null || echo none; "
                "echo written-$$ > /f; echo x > %s/%s; ls /'\n" % (bb, bb, STORE, marker))
    env = user_env(home)
    m = RootlessMount(home, spec, env, "--db", db)
    runc = Runc(home, env)
    try:
        # Read-only: the FUSE tree, in a user namespace mapping root to
        # the user.
        uid = pwd.getpwnam(USER).pw_uid
        lines = out(runc.run(bundle_for(m, "ro")), m).split("\n")
        assert lines[0].split() == ["0", str(uid), "1"]
        assert lines[1:] == ["0", "dev", "nix", "proc", "sys", ""]

        # Writable: its name leads to the area in the user's runtime
        # directory, where fuse-overlayfs is mounted.
        area = out(as_user(["readlink", os.path.join(m.mnt, "w")])).strip()
        assert area.startswith(env["XDG_RUNTIME_DIR"] + "/bundlefs/"), area
        points = fuse_overlays(m.state)
        assert points == [area + "/rootfs"], points
        first = out(runc.run(bundle_for(m, "w")), m).split()
        assert first[0] == "none" and first[1:] == ["dev", "f", "nix", "proc", "sys"]
        second = out(runc.run(bundle_for(m, "w")), m).split()
        assert second[0].startswith("written-") and second[1:] == first[1:]
        # What it wrote is in the upper directory, and not in the store.
        upper = glob.glob(m.state + "/*/w/upper")
        assert len(upper) == 1, upper
        assert open(upper[0] + "/f").read() == second[0] + "\n"
        assert open(upper[0] + STORE + "/" + marker).read() == "x\n"
        assert not os.path.exists(STORE + "/" + marker)
        w = m.status()["w"]
        assert w["writable_root"] == {"upper": upper[0], "mounted": True, "in_use": False}
        assert w["problems"] == []

        # reset: the next container starts clean; the old generation,
        # which no container uses, goes.
        p = as_user([BUNDLECTL, "reset", m.mnt, "w"])
        assert b"writes discarded" in p.stdout, p
        third = out(runc.run(bundle_for(m, "w")), m).split()
        assert third[0] == "none"
        bundle_dir = os.path.dirname(upper[0])
        wait_for(lambda: sorted(os.listdir(bundle_dir)) == ["upper.1", "work.1"],
                 "the old generation stays: %s" % os.listdir(bundle_dir), 20)
        assert fuse_overlays(m.state) == points  # the new root, on the same place

        # A plain unmount works with the writable root up; the root and its
        # fuse-overlayfs go with it, and the daemon exits 0.
        p = as_user(["fusermount3", "-u", m.mnt])
        assert p.returncode == 0, p.stderr
        assert m.proc.wait(10) == 0, m.stderr()
        assert not is_mounted(m.mnt)
        assert fuse_overlays(m.state) == []
        assert fuse_overlayfs_processes(m.state) == []
        assert not os.path.exists(area)
        assert bfsmount.problems(m.stderr()) == [], m.stderr()
        # The writes stay for the next mount.
        assert os.path.exists(bundle_dir + "/upper.1/f")
    finally:
        runc.cleanup()
        m.cleanup()


def test_unmount_while_a_rootless_container_runs_loses_nothing(fuse_for_all, home, nix, tiny):
    # The mount goes (a plain fusermount3 -u) while a container runs on
    # its writable root: the container keeps its root and writes on; its
    # fuse-overlayfs serves it until it exits, then goes, and the daemon
    # exits 0. (A reset comes first: the container's generation is in use.)
    bb = [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]
    db = readonly_copy_of_the_database(home)
    ctl = os.path.join(home, "ctl")
    os.mkdir(ctl)
    pw = pwd.getpwnam(USER)
    os.chown(ctl, pw.pw_uid, pw.pw_gid)
    spec = os.path.join(home, "spec.conf")
    with open(spec, "w") as f:
        f.write("[w]\nargs = %s/bin/sh -c 'echo before > /a; touch /ctl/started; "
                "while [ ! -e /ctl/go ]; do sleep 0.05; done; echo after > /b; cat /a /b'\n"
                "mount = /ctl bind %s rbind\n" % (bb, ctl))
    env = user_env(home)
    m = RootlessMount(home, spec, env, "--db", db)
    runc = Runc(home, env)
    try:
        c = runc.start(bundle_for(m, "w"))
        wait_for(lambda: os.path.exists(ctl + "/started") or c.poll() is not None, "no start", 30)
        assert c.poll() is None, c.communicate()
        # A reset meanwhile: new containers get a new generation; the one
        # the container writes in is in use (its root, a fuse-overlayfs
        # mount in the container's namespace, names it), so prune keeps it.
        upper = glob.glob(m.state + "/*/w/upper")[0]
        assert b"writes discarded" in as_user([BUNDLECTL, "reset", m.mnt, "w"]).stdout
        text = out(as_user([BUNDLECTL, "prune", "--dry-run", m.mnt]))
        assert "%s (in use)" % upper in text, text
        assert "%s.1 (the current one)" % upper in text, text
        p = as_user(["fusermount3", "-u", m.mnt])
        assert p.returncode == 0, p.stderr
        assert not is_mounted(m.mnt)
        wait_for(lambda: fuse_overlays(m.state) == [], "the writable root stays in this namespace")
        assert fuse_overlayfs_processes(m.state) != []  # serving the container
        assert m.proc.poll() is None  # serving its lower layer
        open(ctl + "/go", "w").close()
        o, e = c.communicate(timeout=30)
        assert c.returncode == 0, e
        assert o.decode().split() == ["before", "after"]
        assert m.proc.wait(10) == 0, m.stderr()
        assert fuse_overlayfs_processes(m.state) == []
        # (What it wrote went to the generation the reset discarded, which
        # goes once the container is gone; the current one stays.)
        assert os.path.isdir(upper + ".1")
        assert bfsmount.problems(m.stderr()) == [], m.stderr()
    finally:
        runc.cleanup()
        m.cleanup()
