# bundlefs run by an unprivileged user: it mounts through fusermount3,
# reads Nix's database the way such a user can (nixdb.h), serves the same
# tree, and unmounts cleanly. /dev/fuse is 0600 on these machines: the
# test lets everyone use it while it runs, and restores it.
import grp
import json
import os
import pwd
import shutil
import socket
import sqlite3
import stat
import subprocess
import tempfile
import time

import pytest

import bfsmount
from conftest import BUNDLECTL, BUNDLEFS, STORE, closure_files, is_mounted, run
from test_status import check_document

USER = "nobody"


@pytest.fixture
def fuse_for_all():
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    os.chmod("/dev/fuse", 0o666)
    yield
    os.chmod("/dev/fuse", mode)


@pytest.fixture
def home():
    """A directory the unprivileged user owns (pytest's are root's, 0700)."""
    d = tempfile.mkdtemp(prefix="bundlefs-nonroot-")
    os.chmod(d, 0o755)
    pw = pwd.getpwnam(USER)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    yield d
    for line in open("/proc/self/mountinfo"):
        point = line.split()[4]
        if point.startswith(d + "/"):
            subprocess.run(["umount", "-l", point])
    shutil.rmtree(d, ignore_errors=True)


def as_user(cmd, **kw):
    return subprocess.run(["runuser", "-u", USER, "--", *cmd], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw)


def readonly_copy_of_the_database(home):
    """Nix's database, copied (still in WAL mode) into a directory the user
    may read but not write: no other connection, no index to share, as on
    a machine where nothing else has the database open."""
    d = os.path.join(home, "db")
    os.mkdir(d)
    db = os.path.join(d, "db.sqlite")
    src = sqlite3.connect("file:/nix/var/nix/db/db.sqlite?mode=ro", uri=True)
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.execute("PRAGMA journal_mode=WAL")
    dst.close()
    assert not os.path.exists(db + "-wal") and not os.path.exists(db + "-shm")
    os.chmod(db, 0o644)
    os.chmod(d, 0o755)  # root's: the user cannot create db.sqlite-shm
    return db


class UserMount:
    def __init__(self, home, spec, *args, env=None):
        self.mnt = os.path.join(home, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        pw = pwd.getpwnam(USER)
        os.chown(self.mnt, pw.pw_uid, pw.pw_gid)
        self.err = open(os.path.join(home, "stderr"), "w+")
        # (The environment is the test's: XDG_RUNTIME_DIR only where
        # given, whatever the suite's own has.)
        pre = ["env", "-u", "XDG_RUNTIME_DIR"] + ["%s=%s" % kv for kv in (env or {}).items()]
        self.proc = subprocess.Popen(["runuser", "-u", USER, "--", *pre, BUNDLEFS, "-f", *args,
                                      self.mnt, spec], stdout=subprocess.DEVNULL,
                                     stderr=self.err)
        deadline = time.monotonic() + 10
        while not is_mounted(self.mnt):
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "did not mount: " + self.stderr()
            time.sleep(0.01)

    def stderr(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def unmount(self):
        p = as_user(["fusermount3", "-u", self.mnt])
        assert p.returncode == 0, p.stderr
        assert self.proc.wait(10) == 0, self.stderr()
        assert not is_mounted(self.mnt)


def test_unprivileged_daemon_serves_the_closure_from_the_database(fuse_for_all, home, nix, app):
    db = readonly_copy_of_the_database(home)
    spec = os.path.join(home, "spec.conf")
    with open(spec, "w") as f:
        f.write("[a]\nargs = %s/bin/app\nreadonly = true\n" % app)
    m = UserMount(home, spec, "--db", db, "--gcroots", "none")
    try:
        assert as_user(["ls", m.mnt]).stdout.split() == [b"a"]
        # The daemon's owner is not root: config.json is rootless (root in
        # the container is the owner), as bundlectl shows it to that user.
        cfg = as_user(["cat", os.path.join(m.mnt, "a", "config.json")])
        assert cfg.stdout == as_user([BUNDLECTL, "config", spec, "a"]).stdout
        pw = pwd.getpwnam(USER)
        assert json.loads(cfg.stdout)["linux"]["uidMappings"] == [
            {"containerID": 0, "hostID": pw.pw_uid, "size": 1}]
        assert cfg.stdout != run([BUNDLECTL, "config", spec, "a"]).stdout
        listed = as_user(["ls", os.path.join(m.mnt, "a", "rootfs") + STORE])
        assert listed.returncode == 0, m.stderr()
        assert listed.stdout.decode().split() == [os.path.basename(p) for p in nix.closure(app)]
        for real in closure_files(nix.closure(app)):
            served = os.path.join(m.mnt, "a", "rootfs") + real
            with open(real, "rb") as f:
                assert as_user(["cat", served]).stdout == f.read(), real
        assert not os.path.exists(db + "-shm")  # nothing written beside it
        # Kernel-native roots (the default) need root, and libcomposefs:
        # the FUSE tree serves, and the log says why, once, as a notice.
        built_in = b"native roots built in" in run([BUNDLEFS, "--version"]).stdout
        why = "they need root" if built_in else "this bundlefs was built without libcomposefs"
        assert m.stderr().count("no kernel-native roots on %s (%s)" % (m.mnt, why)) == 1, m.stderr()
        m.unmount()
        assert bfsmount.problems(m.stderr()) == []
    finally:
        if m.proc.poll() is None:
            m.proc.kill()


def test_a_log_without_its_index_is_reported_not_misread(fuse_for_all, home, nix, app):
    # A write-ahead log with commits in it but no index (a writer that
    # died) cannot be read without the index; bundlefs says so and the
    # bundle answers EIO, rather than serve the database without them.
    db = readonly_copy_of_the_database(home)
    w = sqlite3.connect(db)
    w.execute("PRAGMA wal_autocheckpoint=0")
    w.execute("UPDATE ValidPaths SET registrationTime = registrationTime + 1")
    w.commit()
    shutil.copy(db + "-wal", db + "-wal.keep")
    w.close()
    os.rename(db + "-wal.keep", db + "-wal")
    if os.path.exists(db + "-shm"):
        os.unlink(db + "-shm")
    assert os.path.getsize(db + "-wal") > 0
    os.chmod(db + "-wal", 0o644)
    spec = os.path.join(home, "spec.conf")
    with open(spec, "w") as f:
        f.write("[a]\nargs = %s/bin/app\n" % app)
    m = UserMount(home, spec, "--db", db, "--gcroots", "none")
    try:
        p = as_user(["ls", os.path.join(m.mnt, "a", "rootfs")])
        assert p.returncode != 0 and b"Input/output error" in p.stderr
        assert "write-ahead log is in use" in m.stderr()
        m.unmount()
    finally:
        if m.proc.poll() is None:
            m.proc.kill()


@pytest.mark.parametrize("lacks", ["fuse-overlayfs", "a runtime directory"])
def test_a_writable_root_the_daemon_cannot_make_is_an_error(fuse_for_all, home, nix, app, lacks):
    # readonly = false needs a writable root, which a daemon that is not
    # root makes with fuse-overlayfs in its runtime directory
    # (test_rootless.py): without either, the bundle's rootfs answers EIO,
    # and the reason names the bundle and what to do; it is never served
    # read-only instead.
    db = readonly_copy_of_the_database(home)
    spec = os.path.join(home, "spec.conf")
    with open(spec, "w") as f:
        f.write("[ro]\nargs = %s/bin/app\nreadonly = true\n[w]\nargs = %s/bin/app\n" % (app, app))
    state = os.path.join(home, "state")
    if lacks == "fuse-overlayfs":
        # (a PATH with fusermount3 alone; a runtime directory the user owns)
        bindir = os.path.join(home, "bin")
        os.mkdir(bindir)
        os.symlink(shutil.which("fusermount3"), os.path.join(bindir, "fusermount3"))
        env = {"PATH": bindir, "XDG_RUNTIME_DIR": home}
        why = ("finding fuse-overlayfs failed (%s/bundlefs/" % home,
               "fuse-overlayfs is not installed (not in PATH): a daemon that is not root makes "
               "writable roots with it (Debian: apt-get install fuse-overlayfs)")
    else:
        # (root's runtime directory, the default without XDG_RUNTIME_DIR)
        env = {}
        why = ("making its area in the runtime directory failed (/run/bundlefs/",
               "Permission denied (a daemon that is not root needs one it may write: "
               "$XDG_RUNTIME_DIR, or --run-dir)")
    m = UserMount(home, spec, "--db", db, "--gcroots", "none", "--state-dir", state, env=env)
    try:
        p = as_user(["ls", os.path.join(m.mnt, "w", "rootfs")])
        assert p.returncode != 0 and b"Input/output error" in p.stderr
        assert ('spec.conf:4: bundle "w": readonly = false needs a writable root, and '
                + why[0]) in m.stderr(), m.stderr()
        assert why[1] in m.stderr(), m.stderr()
        # Its status says so: failed, for its writable root.
        p = as_user([BUNDLECTL, "status", "--json", m.mnt])
        assert p.returncode == 0, p.stderr
        w = {b["name"]: b for b in check_document(json.loads(p.stdout))["bundles"]}["w"]
        assert w["state"] == "failed"
        upper = w["writable_root"]["upper"]
        assert upper.startswith(state + "/") and upper.endswith("/w/upper")
        assert w["writable_root"] == {"upper": upper, "mounted": False, "in_use": False}
        assert [(x["bundle"], x["kind"]) for x in w["problems"]] == [("w", "writable-root")]
        assert why[1] in w["problems"][0]["message"]
        assert as_user(["ls", os.path.join(m.mnt, "ro", "rootfs") + STORE]).returncode == 0
        m.unmount()
    finally:
        if m.proc.poll() is None:
            m.proc.kill()


def test_a_database_the_user_cannot_read_is_said_to_be_so(home, app):
    # Not "its write-ahead log is in use": the file itself is closed to
    # the user.
    db = readonly_copy_of_the_database(home)
    os.chmod(db, 0o600)
    spec = os.path.join(home, "spec.conf")
    with open(spec, "w") as f:
        f.write("[a]\nargs = %s/bin/app\n" % app)
    p = as_user([BUNDLECTL, "check", "--db", db, spec])
    assert p.returncode == 2, p
    err = p.stderr.decode()
    assert "Nix database %s: Permission denied (uid %d)" % (db, pwd.getpwnam(USER).pw_uid) in err
    assert "write-ahead log" not in err


def test_a_socket_directory_another_user_made_is_not_used(fuse_for_all, home, nix, app):
    # Without a runtime directory (/run/user/UID), the user's daemon keeps
    # its control socket in /tmp/bundlefs-UID, which another user can make
    # first: the daemon then goes without a socket rather than put it
    # where others could replace it, and bundlectl refuses any socket
    # there that is not the user's.
    uid = pwd.getpwnam(USER).pw_uid
    assert not os.path.exists("/run/user/%d" % uid)
    d = "/tmp/bundlefs-%d" % uid
    aside = "%s.aside-%d" % (d, os.getpid())
    if os.path.lexists(d):
        os.rename(d, aside)
    os.mkdir(d)
    os.chmod(d, 0o777)
    try:
        db = readonly_copy_of_the_database(home)
        spec = os.path.join(home, "spec.conf")
        with open(spec, "w") as f:
            f.write("[a]\nargs = %s/bin/app\nreadonly = true\n" % app)
        m = UserMount(home, spec, "--db", db, "--gcroots", "none")
        try:
            deadline = time.monotonic() + 10
            while "no control socket" not in m.stderr():
                assert time.monotonic() < deadline, m.stderr()
                time.sleep(0.01)
            assert ("no control socket (%s: owned by uid 0, mode 0777: not this user's own "
                    "directory)" % d) in m.stderr()
            assert os.listdir(d) == []
            p = as_user([BUNDLECTL, "status", m.mnt])
            assert p.returncode == 1 and b"no control socket" in p.stderr, p.stderr
            # A socket someone else put there is refused.
            dev = bfsmount.mount_device(m.mnt)
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.join(d, dev))
            os.chmod(os.path.join(d, dev), 0o666)
            s.listen()
            try:
                p = as_user([BUNDLECTL, "status", m.mnt])
                assert p.returncode == 1, p.stdout
                assert (b"it is served by uid 0 (pid %d), not by the mount's owner (uid %d)"
                        % (os.getpid(), uid)) in p.stderr, p.stderr
            finally:
                s.close()
            assert as_user(["ls", os.path.join(m.mnt, "a", "rootfs") + STORE]).returncode == 0
            m.unmount()
        finally:
            if m.proc.poll() is None:
                m.proc.kill()
    finally:
        shutil.rmtree(d)
        if os.path.lexists(aside):
            os.rename(aside, d)
