# Failover and live upgrade: the daemon dies (SIGKILL, any number of
# times, in the middle of a reload or of resolving a closure) or is
# replaced by a new binary, while readers and a container use the mount.
# The bundles under load are read-only ones, read through the FUSE tree
# (writable roots across a failover: test_writable.py).
# Nothing may fail: a successor takes the FUSE connection over, the kernel
# sends again what the dead daemon had not answered, and readers only
# wait.
import json
import os
import re
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from bfsmount import alive
from conftest import (BUILD, BUNDLEFS, STORE, bundlectl, is_mounted, run, stop_mount, wait_for,
                      write_spec)
import conftest
from test_load import drop_caches, expected_files

# Walks the store inside the container, reading every file, and says how
# many it read and how many bytes; "started" once it runs.
WALKER = r"""
import os, sys
print("started", flush=True)
n = nbytes = 0
errors = []
for d, dirs, files in os.walk("/nix/store"):
    dirs.sort()
    for name in sorted(files):
        p = os.path.join(d, name)
        if os.path.islink(p):
            continue
        try:
            with open(p, "rb") as f:
                nbytes += len(f.read())
            n += 1
        except OSError as e:
            errors.append("%s: %s" % (p, e))
print("read %d files, %d bytes, %d errors %s" % (n, nbytes, len(errors), errors[:3]), flush=True)
"""


def closure_files(closure):
    n = nbytes = 0
    for p in closure:
        for d, _, files in os.walk(p):
            for name in files:
                full = os.path.join(d, name)
                if not os.path.islink(full):
                    n += 1
                    nbytes += os.path.getsize(full)
    return n, nbytes


class Readers:
    """`count` readers (test_load's) reading files of rootfs they have not
    read before until `seconds` have passed; result() fails on any
    error."""

    def __init__(self, tmp_path, closure, rootfs, count, seconds, seed=0):
        reader, efile = expected_files(tmp_path, closure)
        deadline = time.time() + seconds
        self.procs = [subprocess.Popen([sys.executable, str(reader), rootfs, str(seed + k),
                                        str(deadline), str(efile)], stdout=subprocess.PIPE)
                      for k in range(count)]

    def result(self):
        total = 0
        for p in self.procs:
            out, _ = p.communicate(timeout=300)
            assert p.returncode == 0
            r = json.loads(out)
            assert r["nerrors"] == 0, (r["nerrors"], r["errors"])
            total += r["files"]
        return total


class Probe:
    """Looks up a new name in the mount every millisecond (each lookup
    reaches the daemon); the longest wait between two answers is the
    pause readers saw."""

    def __init__(self, directory):
        self.dir = directory
        self.longest = 0.0
        self.errors = []
        self.stop = False
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        last = time.monotonic()
        i = 0
        while not self.stop:
            i += 1
            try:
                os.stat(os.path.join(self.dir, "probe-%d" % i))
                self.errors.append("probe-%d exists" % i)
            except FileNotFoundError:
                pass
            except OSError as e:
                self.errors.append(str(e))
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now
            time.sleep(0.001)

    def finish(self):
        self.stop = True
        self.t.join()
        assert not self.errors, self.errors[:5]
        return self.longest


def Mount(mountpoint, spec, args=()):
    """bundlefs -f, whose successors log to MOUNTPOINT.log (m.log())."""
    return conftest.Mount(mountpoint, spec, tuple(args) + ("--log", str(mountpoint) + ".log"))


def report(name, seconds):
    """The pause, for the log of the run (tools/bench measures it too)."""
    print("\n%s: longest pause %.0f ms" % (name, seconds * 1000))


@pytest.fixture
def realistic(nix):
    r = nix.build("realistic")
    return r, nix.closure(r)


def walker_spec(tmp_path, real):
    return write_spec(tmp_path, "[r]\nreadonly = true\nargs = %s\n" % json.dumps(
        [real + "/bin/python3", "-c", WALKER]))


class Load:
    """4 cold readers of files they have not touched, a runc container
    walking the whole store, and a probe timing the longest wait, on
    bundle r of mount m; finish() checks that nothing failed and returns
    the pause."""

    def __init__(self, tmp_path, m, closure, runc):
        self.closure = closure
        rootfs = m.path("r", "rootfs")
        drop_caches()
        self.readers = Readers(tmp_path, closure, rootfs, 4, 8)
        cid = "bfs-" + uuid.uuid4().hex[:12]
        runc.ids.append(cid)
        self.container = subprocess.Popen(
            ["runc", "--root", runc.root, "run", "-b", m.path("r"), cid],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.container.stdout.readline() == b"started\n"
        self.probe = Probe(rootfs + "/nix")
        time.sleep(1)

    def finish(self):
        out, err = self.container.communicate(timeout=300)
        pause = self.probe.finish()
        assert self.readers.result() > 100
        n, nbytes = closure_files(self.closure)
        assert self.container.returncode == 0, err
        assert out.decode() == "read %d files, %d bytes, 0 errors []\n" % (n, nbytes)
        return pause


def test_kill_under_readers_and_a_container(tmp_path, realistic, runc):
    real, closure = realistic
    m = Mount(tmp_path / "mnt", walker_spec(tmp_path, real))
    try:
        load = Load(tmp_path, m, closure, runc)
        old = m.proc.pid
        new = m.kill_daemon()
        assert new != old
        pause = load.finish()
        report("SIGKILL under 4 readers and a container", pause)
        assert pause < 5
        st = m.status()
        assert st["failovers"] == 1 and st["upgrades"] == 0
        assert st["supervisor"] and st["pid"] == new
        assert m.problems() == []
        stop_mount(m)
    finally:
        m.cleanup()


def test_twenty_kills_in_a_row(tmp_path, realistic):
    real, closure = realistic
    spec = write_spec(tmp_path, "[r]\nreadonly = true\nargs = %s/bin/python3\n" % real)
    m = Mount(tmp_path / "mnt", spec)
    try:
        rootfs = m.path("r", "rootfs")
        drop_caches()
        readers = Readers(tmp_path, closure, rootfs, 4, 12)
        probe = Probe(rootfs + "/nix")
        pids = {m.proc.pid}
        for _ in range(20):
            time.sleep(random.uniform(0.05, 0.3))
            pids.add(m.kill_daemon())
        pause = probe.finish()
        assert len(pids) == 21
        assert readers.result() > 100
        report("20 kills in a row", pause)
        assert m.status()["failovers"] == 20
        stop_mount(m)
    finally:
        m.cleanup()


def test_kill_during_reloads(tmp_path, realistic):
    # Each reload changes what `v` runs; the daemon is killed a moment
    # after it is asked to reload. The successor serves either the spec
    # before or the one after, whole: config.json is one of the two, and
    # what `r` serves never breaks.
    real, closure = realistic
    path = tmp_path / "spec.conf"

    def variant(i):
        return ("[r]\nreadonly = true\nargs = %s/bin/python3\n"
                "[v]\nreadonly = true\nargs = %s/bin/bash -c 'echo %d'\n" % (real, real, i))

    path.write_text(variant(0))
    m = Mount(tmp_path / "mnt", str(path))
    try:
        drop_caches()
        readers = Readers(tmp_path, closure, m.path("r", "rootfs"), 2, 8)
        configs = {0: bundlectl("config", str(path), "v").stdout}
        seen = set()
        for i in range(1, 11):
            path.write_text(variant(i))
            configs[i] = bundlectl("config", str(path), "v").stdout
            pid, _ = m.pids()
            os.kill(pid, signal.SIGHUP)
            time.sleep(random.uniform(0, 0.01))
            m.kill_daemon()
            with open(m.path("v", "config.json"), "rb") as f:
                got = f.read()
            match = [k for k, c in configs.items() if c == got]
            assert match and match[0] >= i - 1 and match[0] <= i, (i, match)
            seen.add(match[0] == i)
            # (what the successor serves is what it says)
            assert m.status()["generation"] >= 1
            # the next round starts from what is on disk
            bundlectl("reload", m.mountpoint)
        try:
            n = readers.result()
        except AssertionError as e:
            # (what the daemons said, for an error seen once in a while on
            # kernel-native roots under load)
            raise AssertionError("%s\n%s\n%s" % (e, m.stderr()[-4000:], m.log()[-8000:]))
        assert n > 10
        with open(m.path("v", "config.json"), "rb") as f:
            assert f.read() == configs[10]
        stop_mount(m)
    finally:
        m.cleanup()


def test_kill_during_closure_resolution(tmp_path, realistic):
    # Without Nix's database the closure comes from scanning every file of
    # it, which takes a while: the daemon dies in the middle, the listing
    # that asked for it is sent to the successor, which resolves again.
    real, closure = realistic
    spec = write_spec(tmp_path, "[r]\nreadonly = true\nargs = %s/bin/python3\n" % real)
    m = Mount(tmp_path / "mnt", spec, ("--db", "none", "--gcroots", "none"))
    try:
        got = {}

        def listing():
            try:
                got["names"] = sorted(os.listdir(m.path("r", "rootfs") + STORE))
            except OSError as e:
                got["error"] = e

        t = threading.Thread(target=listing)
        t.start()
        wait_for(lambda: m.status()["bundles"][0]["state"] == "resolving",
                 "the bundle is not being resolved")
        time.sleep(0.05)
        assert t.is_alive()  # still waiting for its answer
        m.kill_daemon()
        t.join(120)
        assert "error" not in got, got
        assert got["names"] == sorted(os.path.basename(p) for p in closure)
        stop_mount(m)
    finally:
        m.cleanup()


def test_live_upgrade_under_load(tmp_path, realistic, runc):
    # A new binary (another file: the old one may be gone or replaced)
    # takes the mount over from the running daemon, which leaves.
    real, closure = realistic
    newbin = tmp_path / "bundlefs-new"
    shutil.copy(BUNDLEFS, newbin)
    m = Mount(tmp_path / "mnt", walker_spec(tmp_path, real))
    try:
        rootfs = m.path("r", "rootfs")
        load = Load(tmp_path, m, closure, runc)
        _, supervisor = m.pids()
        p = run([str(newbin), "--takeover", m.mountpoint], check=False, timeout=60)
        assert p.returncode == 0, p.stderr
        assert m.proc.wait(10) == 0  # the old daemon left
        pause = load.finish()
        report("live upgrade under 4 readers and a container", pause)
        st = m.status()
        assert st["upgrades"] == 1 and st["failovers"] == 0
        assert st["supervisor"] == supervisor
        assert os.readlink("/proc/%d/exe" % st["pid"]) == str(newbin)
        # Successors now start from the new binary.
        os.unlink(newbin)
        new = m.kill_daemon()
        assert os.readlink("/proc/%d/exe" % new) == str(newbin) + " (deleted)"
        assert os.listdir(rootfs)
        stop_mount(m)
    finally:
        m.cleanup()


def test_upgrade_to_a_binary_that_cannot_read_the_state_is_refused(tmp_path, tiny):
    # A binary that writes another state format asks for the mount with
    # it; the running daemon refuses, and serves on.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    with Mount(tmp_path / "mnt", spec) as m:
        before = os.listdir(m.path("t", "rootfs"))
        other = os.path.join(BUILD, "tests", "bundlefs-nextformat")
        p = run([other, "--takeover", m.mountpoint], check=False, timeout=60)
        assert p.returncode == 1
        assert re.search(rb"the state is in format \d+, the new daemon reads 999", p.stderr), p.stderr
        assert m.status()["pid"] == m.proc.pid
        assert os.listdir(m.path("t", "rootfs")) == before
        assert m.status()["upgrades"] == 0


def test_takeover_of_a_mount_point_named_relative(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        old = m.pids()[0]
        p = subprocess.run([BUNDLEFS, "--takeover", "mnt"], cwd=str(tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, p.stderr
        wait_for(lambda: (m.status() or {}).get("pid") not in (None, old), "not taken over")
        assert os.listdir(m.path("t", "rootfs"))
        stop_mount(m)
    finally:
        m.cleanup()


def test_sigterm_after_the_mount_point_was_moved_unmounts(tmp_path, tiny):
    # A directory above the mount point renamed while mounted: the daemon
    # finds its mount by its id, where it is now, and detaches it there.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    (tmp_path / "a").mkdir()
    m = Mount(tmp_path / "a" / "mnt", spec)
    try:
        assert os.listdir(m.path("t", "rootfs"))
        os.rename(tmp_path / "a", tmp_path / "b")
        moved = str(tmp_path / "b" / "mnt")
        assert is_mounted(moved)
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=30) == 0, m.stderr()
        wait_for(lambda: not is_mounted(moved), "the moved mount stays")
        assert "not unmounting" not in m.stderr()
    finally:
        if is_mounted(str(tmp_path / "b" / "mnt")):
            subprocess.run(["umount", "-l", str(tmp_path / "b" / "mnt")])
        os.rename(tmp_path / "b", tmp_path / "a") if (tmp_path / "b").exists() else None
        m.cleanup()


def watchdog_of(daemon):
    """The watchdog the daemon started (its child named bundlefs-watch)."""
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            fields = open("/proc/%s/stat" % stat).read().rsplit(")", 1)[1].split()
            comm = open("/proc/%s/comm" % stat).read().strip()
        except OSError:
            continue
        if int(fields[1]) == daemon and comm == "bundlefs-watch":
            return int(stat)
    raise AssertionError("no watchdog of %d" % daemon)


def mount_identity(path):
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4] == str(path):
            ident = (f[0], f[2])
    return ident


def test_a_watchdog_never_takes_a_new_mount_for_its_own(tmp_path, tiny):
    # A's daemon and supervisor die while its watchdog is held back; A is
    # unmounted and B mounted on the same point, where it gets A's mount
    # id and device number (both are reused). The watchdog, let go, must
    # leave B alone: the kernel's unique mount id is not B's.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\nreadonly = true\n" % tiny)
    a = Mount(tmp_path / "mnt", spec, ("--data", "fuse"))
    try:
        watchdog = watchdog_of(a.proc.pid)
        ident = mount_identity(a.mountpoint)
        os.kill(watchdog, signal.SIGSTOP)
        a.kill_all()
        subprocess.run(["umount", "-l", a.mountpoint], check=True)
    finally:
        a.cleanup()
    b = None
    try:
        for _ in range(5):
            b = Mount(tmp_path / "mnt", spec, ("--data", "fuse"))
            if mount_identity(b.mountpoint) == ident:
                break
            stop_mount(b)
            b.cleanup()
            b = None
        if b is None:
            os.kill(watchdog, signal.SIGCONT)
            pytest.skip("no new mount got the old one's id and device here")
        os.kill(watchdog, signal.SIGCONT)
        wait_for(lambda: not alive(watchdog), "the watchdog stays")
        assert is_mounted(b.mountpoint) and os.listdir(b.path("t", "rootfs"))
        assert b.proc.poll() is None
        stop_mount(b)
    finally:
        if b:
            b.cleanup()


def test_takeover_of_what_is_not_a_bundlefs_mount(tmp_path):
    p = run([BUNDLEFS, "--takeover", str(tmp_path)], check=False, timeout=30)
    assert p.returncode == 1 and b"no bundlefs mount there" in p.stderr


def test_killing_the_supervisor_changes_nothing(tmp_path, realistic):
    real, closure = realistic
    spec = write_spec(tmp_path, "[r]\nreadonly = true\nargs = %s/bin/python3\n" % real)
    m = Mount(tmp_path / "mnt", spec)
    try:
        drop_caches()
        readers = Readers(tmp_path, closure, m.path("r", "rootfs"), 4, 4)
        _, supervisor = m.pids()
        os.kill(supervisor, signal.SIGKILL)
        # (status() is None when the control socket does not answer; seen
        # once, with the machine loaded.)
        wait_for(lambda: (m.status() or {}).get("supervisor") not in (None, supervisor),
                 "no new supervisor")
        assert readers.result() > 100
        assert m.status()["pid"] == m.proc.pid
        # The new supervisor does its job.
        m.kill_daemon()
        assert os.listdir(m.path("r", "rootfs"))
        stop_mount(m)
    finally:
        m.cleanup()


def test_a_kill_of_the_successors_process_group_leaves_the_supervisor(tmp_path, tiny):
    # `kill -9 -PGID` of the daemon serving after a failover (as a
    # service manager or a shell job control kills a group) is a daemon
    # crash, not the end of the mount: the supervisor is not in it.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        successor = m.kill_daemon()
        _, supervisor = m.pids()
        group = os.getpgid(successor)
        assert group != os.getpgid(supervisor)
        os.killpg(group, signal.SIGKILL)
        wait_for(lambda: (m.status() or {}).get("pid") not in (None, successor),
                 "no successor after the kill of the group")
        assert m.pids()[1] == supervisor
        assert os.listdir(m.path("t", "rootfs"))
        stop_mount(m)
    finally:
        m.cleanup()


def test_killing_daemon_and_supervisor_unmounts_and_frees_the_mountpoint(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        os.listdir(m.path("t", "rootfs"))
        m.kill_all()
        wait_for(lambda: not is_mounted(m.mountpoint), "the mount stays")
    finally:
        m.cleanup()
    with Mount(tmp_path / "mnt", spec) as m2:
        assert os.listdir(m2.path("t", "rootfs"))


def crashable_mount(tmp_path, tiny):
    """A mount of `tiny` (and its spec) whose daemons write no core file
    when a test sends them a fault signal."""
    import resource
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    core = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, core[1]))
    try:
        return Mount(tmp_path / "mnt", spec), spec
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, core)


def test_successors_that_keep_crashing_give_the_mount_up(tmp_path, tiny):
    # A daemon killed by an operator is replaced however often it happens
    # (test_twenty_kills_in_a_row); successors that crash (a fault signal)
    # one after the other right after serving, as a request that kills
    # every daemon would make them, end in a clean unmount, not a loop.
    # (Signals a sanitizer does not catch: it would turn them into exits.)
    m, spec = crashable_mount(tmp_path, tiny)
    try:
        os.listdir(m.path("t", "rootfs"))
        m.kill_daemon()  # the first daemon: a kill, not a crash
        m.kill_daemon(sig=signal.SIGABRT)
        m.kill_daemon(sig=signal.SIGTRAP)
        assert os.listdir(m.path("t", "rootfs"))
        pid, supervisor = m.pids()
        os.kill(pid, signal.SIGABRT)
        wait_for(lambda: not is_mounted(m.mountpoint), "the mount stays")
        wait_for(lambda: not os.path.exists("/proc/%d/exe" % supervisor),
                 "the supervisor stays")
        assert "successors in a row crashed" in m.log()
    finally:
        m.cleanup()
    with Mount(tmp_path / "mnt", spec) as m2:
        assert os.listdir(m2.path("t", "rootfs"))


def processes_of(mountpoint):
    """The command lines of live processes (not zombies) naming `mountpoint`."""
    out = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read()
            if mountpoint.encode() + b"\0" in cmd and os.path.exists("/proc/%s/exe" % p):
                out.append(cmd)
        except OSError:
            pass
    return out


@pytest.mark.skipif(conftest.NATIVE, reason="the open file is on a kernel-native root, which needs no daemon")
def test_a_supervisor_dying_after_unmount_is_not_replaced(tmp_path, tiny):
    # Lazily unmounted, the daemon serves on for a file still open. Its
    # supervisor dying then is not replaced (there is no mount to keep), and
    # once the file is closed every process of the mount is gone.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        entry = tiny + "/bin/entrypoint"
        f = open(m.path("t", "rootfs") + entry, "rb")
        daemon, supervisor = m.pids()
        run(["fusermount3", "-u", "-z", m.mountpoint])
        os.kill(supervisor, signal.SIGKILL)
        time.sleep(0.5)
        assert f.read() == open(entry, "rb").read()
        assert alive(daemon)
        assert not [c for c in processes_of(m.mountpoint) if b"--supervisor" in c]
        f.close()
        wait_for(lambda: not processes_of(m.mountpoint),
                 "processes of the mount stay: %s" % processes_of(m.mountpoint))
    finally:
        m.cleanup()


@pytest.mark.skipif(conftest.NATIVE, reason="a kernel-native root has no node ids of the daemon's")
def test_node_ids_stay_the_same_files(tmp_path, realistic):
    # Files held open (the kernel holds their node ids) read the same
    # bytes, with the same inode numbers, from the successor.
    real, closure = realistic
    spec = write_spec(tmp_path, "[r]\nreadonly = true\nargs = %s/bin/python3\n" % real)
    m = Mount(tmp_path / "mnt", spec)
    try:
        rootfs = m.path("r", "rootfs")
        files = []
        for p in closure[:20]:
            for d, _, names in os.walk(rootfs + p):
                files += [os.path.join(d, n) for n in names[:5]
                          if os.path.isfile(os.path.join(d, n))]
        fds = [(f, os.open(f, os.O_RDONLY)) for f in files]
        before = {f: (os.fstat(fd).st_ino, os.pread(fd, 1 << 16, 0)) for f, fd in fds}
        m.kill_daemon()
        drop_caches()
        for f, fd in fds:
            assert (os.fstat(fd).st_ino, os.pread(fd, 1 << 16, 0)) == before[f], f
            assert os.stat(f).st_ino == before[f][0]
            os.close(fd)
        stop_mount(m)
    finally:
        m.cleanup()


@pytest.mark.skipif(conftest.NATIVE, reason="a kernel-native root has no node ids of the daemon's")
def test_a_successor_never_serves_another_file_under_an_old_id(tmp_path, nix):
    # While no daemon runs, a served file is replaced by another one of
    # the same name. The successor finds the name again, sees a different
    # file, and answers the old id with ESTALE: never the new bytes.
    from test_hostile import FakeStore
    bb = [p for p in nix.closure(nix.build("tiny")) if p.endswith("-busybox")][0]
    fake = FakeStore(tmp_path, bb + "/bin/busybox", "openat2")
    a = fake.mkpath("a")
    (fake.real / a / "f").write_text("OLD")
    m = Mount(tmp_path / "mnt", fake.spec({"x": [a]}), fake.opts())
    try:
        served = m.path("x", "rootfs") + "%s/%s/f" % (STORE, a)
        fd = os.open(served, os.O_RDONLY)
        assert os.pread(fd, 100, 0) == b"OLD"
        pid, supervisor = m.pids()
        os.kill(pid, signal.SIGSTOP)
        os.unlink(fake.real / a / "f")
        (fake.real / a / "f").write_text("NEW")
        os.kill(pid, signal.SIGKILL)
        m.proc.wait()
        wait_for(lambda: (m.status() or {}).get("pid") not in (None, pid), "no successor")
        drop_caches()
        if m.status()["passthrough"]["on"]:
            # The kernel reads the file the descriptor was opened with
            # itself, as any open file of a deleted one: never the new
            # bytes.
            assert os.pread(fd, 100, 0) == b"OLD"
            # An open of the old node (which reaches the daemon) is
            # refused.
            with pytest.raises(OSError) as e:
                open(served, "rb")
            assert e.value.errno == 116
        else:
            with pytest.raises(OSError) as e:
                os.pread(fd, 100, 0)
            assert e.value.errno == 116  # ESTALE
        os.close(fd)
        stop_mount(m)
    finally:
        m.cleanup()


def test_gc_roots_survive_a_takeover(tmp_path, tiny):
    # While no daemon serves (the supervisor is held back), the roots are
    # there and their directory is locked: another bundlefs, which removes
    # the roots of dead daemons, leaves them. Then the successor serves
    # the same roots.
    gcroots = tmp_path / "gcroots"
    gcroots.mkdir()
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/entrypoint\n" % tiny)
    m = Mount(tmp_path / "mnt", spec, ("--gcroots", str(gcroots)))
    try:
        os.listdir(m.path("t", "rootfs"))
        (d,) = [os.path.join(top, n) for top, dirs, _ in os.walk(gcroots) for n in dirs
                if n == str(m.proc.pid)]
        roots = sorted(os.listdir(d))
        assert roots
        pid, supervisor = m.pids()
        os.kill(supervisor, signal.SIGSTOP)
        os.kill(pid, signal.SIGKILL)
        m.proc.wait()
        with Mount(tmp_path / "other", spec, ("--gcroots", str(gcroots))) as other:
            os.listdir(other.path("t", "rootfs"))
            assert sorted(os.listdir(d)) == roots
        os.kill(supervisor, signal.SIGCONT)
        wait_for(lambda: (m.status() or {}).get("pid") not in (None, pid), "no successor")
        assert sorted(os.listdir(d)) == roots
        assert os.listdir(m.path("t", "rootfs"))
        stop_mount(m)
        wait_for(lambda: not os.path.exists(d), "the roots stay after the mount")
    finally:
        m.cleanup()


def test_handles_opened_by_a_dead_daemon_still_read(tmp_path, tiny):
    # With the mount read-write, OPEN reaches the daemon and the kernel
    # keeps the handle it answered: the successor does not know it, and
    # serves its reads (and directory listings) as those without one.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec, ("--mount-rw",))
    try:
        store = m.path("t", "rootfs") + STORE
        fd = os.open(m.path("t", "config.json"), os.O_RDONLY)
        dfd = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
        first = os.pread(fd, 1 << 20, 0)
        names = sorted(os.listdir(dfd))
        assert names and first
        m.kill_daemon()
        drop_caches()
        assert os.pread(fd, 1 << 20, 0) == first
        os.lseek(dfd, 0, os.SEEK_SET)
        assert sorted(os.listdir(dfd)) == names
        os.close(fd)
        os.close(dfd)
        stop_mount(m)
    finally:
        m.cleanup()


@pytest.mark.parametrize("change", ["file", "link"])
def test_a_spec_changed_while_no_daemon_watched_is_read(tmp_path, tiny, change):
    # The file written, or (its new target written before the mount) the
    # link on the way to it repointed.
    for v, text in [("v1", "[a]\nargs = %s/bin/sh\n"),
                    ("v2", "[a]\nargs = %s/bin/sh\n[b]\nargs = %s/bin/sh\n")]:
        (tmp_path / v).mkdir()
        (tmp_path / v / "spec.conf").write_text(text.replace("%s", tiny))
    os.symlink("v1", tmp_path / "current")
    spec = tmp_path / "current" / "spec.conf"
    m = Mount(tmp_path / "mnt", str(spec), ("--watch",))
    try:
        assert os.listdir(m.mountpoint) == ["a"]
        pid, supervisor = m.pids()
        os.kill(supervisor, signal.SIGSTOP)
        os.kill(pid, signal.SIGKILL)
        m.proc.wait()
        if change == "file":
            spec.write_text("[a]\nargs = %s/bin/sh\n[b]\nargs = %s/bin/sh\n" % (tiny, tiny))
        else:
            os.symlink("v2", tmp_path / "current.new")
            os.rename(tmp_path / "current.new", tmp_path / "current")
        os.kill(supervisor, signal.SIGCONT)
        wait_for(lambda: sorted(os.listdir(m.mountpoint)) == ["a", "b"], "b did not appear")
        assert m.status()["generation"] == 2
        stop_mount(m)
    finally:
        m.cleanup()


def fusectl_abort(path):
    """Aborts the FUSE connection of the mount at `path`, leaving the
    mount in the mount table (as a fusectl abort does)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == os.path.realpath(path):
                minor = fields[2].split(":")[1]
                ctl = "/sys/fs/fuse/connections"
                if not os.path.exists(os.path.join(ctl, minor)):
                    run(["mount", "-t", "fusectl", "fusectl", ctl])
                with open(os.path.join(ctl, minor, "abort"), "w") as a:
                    a.write("1")
                return
    raise AssertionError("%s is not mounted" % path)


def test_no_successor_for_a_connection_that_ended(tmp_path, tiny):
    # The connection aborted (fusectl): the daemon leaves, and the mount
    # stays in the table, dead. The supervisor starts no successor for it
    # (each would take a dead connection over and leave: a restart loop),
    # and leaves too.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        os.listdir(m.path("t", "rootfs"))
        daemon, supervisor = m.pids()
        fusectl_abort(m.mountpoint)
        wait_for(lambda: not alive(daemon) and not alive(supervisor),
                 "the daemon or the supervisor stays")
        time.sleep(1)
        assert "starting another" not in m.log(), m.log()
        assert not processes_of(m.mountpoint), processes_of(m.mountpoint)
    finally:
        subprocess.run(["umount", "-l", m.mountpoint], stderr=subprocess.DEVNULL)
        m.cleanup()


def test_successors_that_crash_at_once_are_started_again_later_and_later(tmp_path, tiny):
    # Successors that end of themselves (a fault here) soon after they
    # serve are started again after a pause that doubles; one killed from
    # outside (SIGKILL: an operator, the OOM killer) is replaced at once.
    m, spec = crashable_mount(tmp_path, tiny)
    try:
        os.listdir(m.path("t", "rootfs"))
        m.kill_daemon(timeout=30)  # (the first daemon: replaced at once)
        # (faults the sanitizers do not catch)
        m.kill_daemon(timeout=30, sig=signal.SIGABRT)
        m.kill_daemon(timeout=30, sig=signal.SIGTRAP)
        m.kill_daemon(timeout=30)
        waits = [int(w) for w in re.findall(r"gone, again; starting another in (\d+) ms", m.log())]
        assert waits == [100, 200], m.log()
        assert m.log().count("is gone; starting another") == 2, m.log()
        assert os.listdir(m.path("t", "rootfs"))
    finally:
        m.cleanup()


def state_memory(pid):
    """The bytes of memory the daemon's failover state region takes."""
    for fd in os.listdir("/proc/%d/fd" % pid):
        path = "/proc/%d/fd/%s" % (pid, fd)
        try:
            if os.readlink(path).startswith("/memfd:bundlefs-state"):
                return os.stat(path).st_blocks * 512
        except FileNotFoundError:
            continue
    raise AssertionError("no state region in %d" % pid)


def test_the_journal_gives_its_memory_back(tmp_path, realistic):
    # Every lookup and forget is journalled: rounds of looking the whole
    # closure up and dropping the kernel's caches write tens of megabytes
    # of records, but the region keeps about the live nodes' worth (a few
    # megabytes here), not what was ever written.
    real, closure = realistic
    spec = write_spec(tmp_path, "[r]\nreadonly = true\nargs = %s/bin/python3\n" % real)
    m = Mount(tmp_path / "mnt", spec, ("--data", "fuse"))
    try:
        root = m.path("r", "rootfs")
        entries = 0
        for _ in range(12):
            for top, dirs, files in os.walk(root + STORE):
                for n in files:
                    os.lstat(os.path.join(top, n))
                entries += len(dirs) + len(files)
            drop_caches()
        # (Each lookup and its forget are two records of 56 bytes and
        # more: some 20 MB here, all of it kept before.)
        assert entries * 2 * 56 > 8 << 20
        used = state_memory(m.pids()[0])
        assert used < 8 << 20, "the state region keeps %d bytes" % used
        # What the region holds still makes a successor serve.
        m.kill_daemon()
        assert sorted(os.listdir(root + STORE)) == sorted(os.path.basename(p) for p in closure)
        stop_mount(m)
    finally:
        m.cleanup()
