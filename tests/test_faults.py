# Faults: termination under load, garbage collection of the store while
# mounted, and the GC roots that prevent it from deleting served closures.
import errno
import os
import signal
import subprocess
import time

import pytest

from conftest import (BUNDLECTL, BUNDLEFS, Mount, STORE, abort_mount, bfsmount, is_mounted, run,
                      wait_for, write_spec)


def test_sigterm_with_open_files_detaches_lazily(tmp_path, app):
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\n" % app)
    m = Mount(tmp_path / "mnt", spec)
    try:
        path = m.path("a", "rootfs") + app + "/bin/app"
        f = open(path, "rb")
        d = os.open(m.path("a", "rootfs") + STORE, os.O_RDONLY)
        m.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while is_mounted(m.mountpoint):
            assert time.monotonic() < deadline, "not detached"
            time.sleep(0.02)
        # Detached from the tree, still serving what is open.
        time.sleep(0.3)
        assert m.proc.poll() is None, "daemon exited while files were open"
        assert f.read().startswith(b"#!")
        assert sorted(os.listdir(d))
        f.close()
        os.close(d)
        m.exited()
    finally:
        m.cleanup()


def test_sigterm_while_a_container_runs(tmp_path, runc, tiny):
    # The container's mount namespace holds the mount: the daemon serves it
    # until the container is gone, then exits 0.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh -c 'sleep 2; cat %s/bin/entrypoint'\n" % (tiny, tiny))
    m = Mount(tmp_path / "mnt", spec)
    try:
        cid = "bfs-term-%d" % os.getpid()
        runc.ids.append(cid)
        p = subprocess.Popen(["runc", "--root", runc.root, "run", "-b", m.path("t"), cid],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        m.proc.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert out.startswith(b"#!")
        m.exited()
        assert not is_mounted(m.mountpoint)
    finally:
        m.cleanup()


def roots_of(pid):
    d = "/nix/var/nix/gcroots/bundlefs/%d" % pid
    return sorted(os.readlink(os.path.join(d, n)) for n in os.listdir(d)) if os.path.isdir(d) else None


def delete(path):
    return subprocess.run(["nix-store", "--delete", path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)


def test_served_closures_are_gc_roots(tmp_path, nix):
    # Fresh store paths that nothing else roots.
    salt = "gc-%d-%d" % (os.getpid(), time.time_ns())
    top = nix.build("tiny", salt=salt)
    closure = nix.closure(top)
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/entrypoint\n" % top)
    m = Mount(tmp_path / "mnt", spec)
    try:
        assert roots_of(m.proc.pid) == []  # lazy: nothing served yet
        os.listdir(m.path("t", "rootfs") + STORE)
        assert roots_of(m.proc.pid) == [top]  # Nix keeps the root's closure
        for path in closure:
            p = delete(path)
            assert p.returncode != 0 and b"still alive" in p.stderr, p.stderr
            assert os.path.exists(path)
        m.stop()
        m.exited()
        assert roots_of(m.proc.pid) is None  # removed on unmount
    finally:
        m.cleanup()
    assert delete(top).returncode == 0
    assert not os.path.exists(top)
    for path in closure:
        delete(path)  # leave no garbage behind


def test_stale_roots_of_a_killed_daemon_are_removed(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/entrypoint\n" % tiny)
    m1 = Mount(tmp_path / "m1", spec)
    try:
        os.listdir(m1.path("t", "rootfs"))
        assert roots_of(m1.proc.pid)
        m1.kill_all()
    finally:
        m1.cleanup()
    assert roots_of(m1.proc.pid)  # left behind by SIGKILL
    with Mount(tmp_path / "m2", spec) as m2:
        assert roots_of(m1.proc.pid) is None


def test_gcroots_none(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/entrypoint\n" % tiny)
    with Mount(tmp_path / "mnt", spec, ("--gcroots", "none")) as m:
        os.listdir(m.path("t", "rootfs"))
        assert roots_of(m.proc.pid) is None


def test_killing_the_process_group_does_not_wedge_the_mount(tmp_path, tiny):
    # `kill -9 -- -PGID` reaches every process of the daemon's group; the
    # supervisor and the watchdog live in sessions of their own: a
    # successor serves on, and when it and the supervisor are killed too,
    # the watchdog detaches the mount.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.Popen([BUNDLEFS, "-f", "--state-dir", str(tmp_path / "state"), str(mnt), spec],
                         start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = bfsmount.Mount.__new__(bfsmount.Mount)
    m.mountpoint, m.proc, m.errlog = str(mnt), p, None
    try:
        deadline = time.monotonic() + 10
        while not is_mounted(mnt):
            assert time.monotonic() < deadline and p.poll() is None, "did not mount"
            time.sleep(0.01)
        m.wait_serving(deadline)
        before = os.listdir(mnt / "t" / "rootfs")
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        deadline = time.monotonic() + 10
        while not m.status() or m.status()["pid"] == p.pid:
            assert time.monotonic() < deadline, "no successor after a group kill"
            time.sleep(0.01)
        assert os.listdir(mnt / "t" / "rootfs") == before
        m.kill_all()
        deadline = time.monotonic() + 10
        while is_mounted(mnt):
            assert time.monotonic() < deadline, "mount left behind by a group kill"
            time.sleep(0.05)
    finally:
        m.cleanup()
    m = Mount(mnt, spec)  # the mountpoint works again
    try:
        assert os.listdir(m.path("t", "rootfs"))
        m.stop()
        m.exited()
    finally:
        m.cleanup()


def test_roots_of_a_live_daemon_under_another_name_are_kept(tmp_path, nix):
    # Liveness is a lock each daemon holds, not its name: a daemon running
    # from a renamed binary keeps its roots when another daemon starts, and
    # what it serves cannot be deleted.
    import shutil
    renamed = tmp_path / "storefs"
    shutil.copy(BUNDLEFS, renamed)
    top = nix.build("tiny", salt="liveroots-%d-%d" % (os.getpid(), time.time_ns()))
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/entrypoint\n" % top)
    with bfsmount.Mount(str(renamed), tmp_path / "m1", spec) as first:
        os.listdir(first.path("t", "rootfs"))
        assert roots_of(first.proc.pid) == [top]
        with Mount(tmp_path / "m2", spec):
            assert roots_of(first.proc.pid) == [top]
            p = delete(top)
            assert p.returncode != 0 and b"still alive" in p.stderr, p.stderr
    for path in nix.closure(top):
        delete(path)


def test_daemons_with_one_pid_keep_their_own_roots(tmp_path, tiny):
    # Two daemons, each pid 1 in a PID namespace of its own, sharing one
    # roots directory: the second must not take the first's roots for its
    # own (a new daemon reusing the pid of one that failed over is the
    # same case).
    import signal
    gcroots = tmp_path / "gcroots"
    gcroots.mkdir()
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/entrypoint\n" % tiny)
    procs = []

    def daemon(unshare):
        """The daemon, pid 1 in its namespace: the child of `unshare`."""
        with open("/proc/%d/task/%d/children" % (unshare.pid, unshare.pid)) as f:
            return int(f.read().split()[0])
    try:
        for name in ("m1", "m2"):
            (tmp_path / name).mkdir()
            procs.append(subprocess.Popen(
                ["unshare", "--pid", "--fork", BUNDLEFS, "-f", "--gcroots", str(gcroots),
                 "--state-dir", str(tmp_path / (name + ".state")), "--data", "fuse",
                 str(tmp_path / name), spec], stderr=subprocess.PIPE))
            wait_for(lambda: is_mounted(tmp_path / name), "%s not mounted" % name)
            os.listdir(tmp_path / name / "t" / "rootfs")
            top = gcroots / "bundlefs"
            wait_for(lambda: all(os.listdir(top / d) for d in os.listdir(top))
                     and len(os.listdir(top)) == len(procs), "roots not registered")
        dirs = sorted(os.listdir(gcroots / "bundlefs"))
        assert dirs == ["1", "1.1"], dirs
        for d in dirs:
            assert [os.readlink(gcroots / "bundlefs" / d / n)
                    for n in os.listdir(gcroots / "bundlefs" / d)] == [tiny]
        os.kill(daemon(procs[1]), signal.SIGTERM)
        assert procs[1].wait(timeout=30) == 0, procs[1].stderr.read()
        assert os.listdir(gcroots / "bundlefs") == ["1"]
        assert os.listdir(gcroots / "bundlefs" / "1")
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(daemon(p), signal.SIGTERM)
                p.wait(timeout=30)
        for name in ("m1", "m2"):
            if is_mounted(tmp_path / name):
                subprocess.run(["umount", "-l", str(tmp_path / name)])


def test_refuses_to_run_without_proc(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    # A private mount namespace with an empty /proc.
    p = run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs none /proc && exec "$0" -f "$1" "$2"', BUNDLEFS, str(mnt), spec],
            check=False, timeout=20)
    assert p.returncode == 1, p.stderr
    # (a sanitizer, which needs /proc too, adds its own lines)
    lines = p.stderr.decode().splitlines()
    assert any(l.startswith("<3>bundlefs: /proc is not mounted") for l in lines), p.stderr


def test_a_spec_naming_a_file_on_its_own_mount_is_refused(tmp_path, tiny):
    # Reading a closure file through its own mount would make the daemon
    # wait for itself (here: resolving b would read through a's rootfs,
    # whose resolution waits for b's). It is refused (by device) without
    # touching the mount, and the other bundles, and the daemon, go on.
    mnt = tmp_path / "mnt"
    inside = "%s/a/rootfs%s/bin/entrypoint" % (mnt, tiny)
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/sh\n[b]\nargs = %s/bin/sh\nclosure = %s\n"
                      % (tiny, tiny, inside))
    with Mount(mnt, spec) as m:
        ls = subprocess.Popen(["ls", m.path("b", "rootfs")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        try:
            out, err = ls.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            abort_mount(mnt)
            ls.communicate()
            raise AssertionError("the daemon waits for itself")
        assert ls.returncode != 0 and b"Input/output error" in err, err
        assert 'closure file %s is on the bundlefs mount %s' % (inside, mnt) in m.stderr()
        assert os.listdir(m.path("a", "rootfs") + STORE)
        # bundlectl check says the same of a spec that points into a mount
        p = run([BUNDLECTL, "check", spec], check=False, timeout=10)
        assert p.returncode == 2
        assert b"is on the bundlefs mount" in p.stderr


def copy_db(dest):
    """A consistent copy of Nix's database (still in WAL mode)."""
    import sqlite3
    src = sqlite3.connect("file:/nix/var/nix/db/db.sqlite?mode=ro", uri=True)
    dst = sqlite3.connect(str(dest))
    src.backup(dst)
    src.close()
    dst.execute("PRAGMA journal_mode=WAL")
    dst.close()
    return str(dest)


def test_a_locked_database_is_retried_not_remembered(tmp_path, nix, app, tiny):
    # A writer holding Nix's database exclusively makes resolution fail
    # for now: the access answers EIO within a bounded wait instead of
    # blocking, and once the lock is gone the same bundle, and one first
    # touched afterwards, resolve.
    import sqlite3
    import threading
    db = copy_db(tmp_path / "db.sqlite")
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\n[t]\nargs = %s/bin/sh\n" % (app, tiny))
    with Mount(tmp_path / "mnt", spec, ("--db", db, "--gcroots", "none")) as m:
        locked, release = threading.Event(), threading.Event()

        def hold():
            c = sqlite3.connect(db, timeout=0)
            c.execute("PRAGMA locking_mode=EXCLUSIVE")
            c.execute("BEGIN EXCLUSIVE")
            c.execute("UPDATE ValidPaths SET registrationTime = registrationTime WHERE id = 1")
            locked.set()
            release.wait(30)
            c.rollback()
            c.close()

        holder = threading.Thread(target=hold)
        holder.start()
        assert locked.wait(10)
        t0 = time.monotonic()
        with pytest.raises(OSError) as e:
            os.listdir(m.path("a", "rootfs"))
        assert e.value.errno == errno.EIO
        assert time.monotonic() - t0 < 4, "the request waited for the lock"
        assert "database is locked" in m.stderr()
        release.set()
        holder.join()
        time.sleep(0.2)  # past the first backoff
        assert sorted(os.listdir(m.path("a", "rootfs") + STORE)) == [
            os.path.basename(p) for p in nix.closure(app)]
        assert os.listdir(m.path("t", "rootfs") + STORE)
