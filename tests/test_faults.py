# Faults: termination under load, garbage collection of the store while
# mounted, and the GC roots that prevent it from deleting served closures.
import os
import signal
import subprocess
import time

import pytest

from conftest import Mount, STORE, is_mounted, run, write_spec


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
        m1.proc.kill()
        m1.proc.wait()
    finally:
        m1.cleanup()
    assert roots_of(m1.proc.pid)  # left behind by SIGKILL
    m2 = Mount(tmp_path / "m2", spec)
    try:
        assert roots_of(m1.proc.pid) is None
        m2.stop()
        m2.exited()
    finally:
        m2.cleanup()


def test_gcroots_none(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/entrypoint\n" % tiny)
    m = Mount(tmp_path / "mnt", spec, ("--gcroots", "none"))
    try:
        os.listdir(m.path("t", "rootfs"))
        assert roots_of(m.proc.pid) is None
        m.stop()
        m.exited()
    finally:
        m.cleanup()
