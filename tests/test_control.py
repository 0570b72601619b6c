# The control socket: only the mount's own daemon can be reached through
# it. Another user who takes a name first (the abstract names bundlefs
# once used, or a socket put where the daemon's is) gets no request, and
# bundlectl and `bundlefs --takeover` refuse a socket served by anyone but
# the mount's owner; a mount whose FUSE device number an earlier mount's
# daemon, still alive, also had gets a socket of its own, which clients
# reach. No client holds another up, the socket serves on when the daemon
# runs out of descriptors, and a client of a daemon that does not answer
# gives up. (docs/security.md, "The control socket")
import ctypes
import itertools
import json
import os
import pwd
import resource
import signal
import stat
import subprocess
import sys
import time

import pytest

import bfsmount
from bfsmount import alive, control_socket, mount_device
from conftest import BUNDLECTL, BUNDLEFS, bundlectl, run, stop_mount, wait_for, write_spec

USER = "nobody"

# Binds every abstract name `bundlefs/0:N` (mode "abstract"), or a socket
# at a path, renamed over it (mode "path"); then answers whatever comes as
# a daemon would ("ok" to a takeover, with no descriptors; a status
# document to anything else) and prints each request it got.
SQUATTER = r"""
import json, os, resource, selectors, socket, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
mode, arg = sys.argv[1:3]
sel = selectors.DefaultSelector()
if mode == "abstract":
    for n in range(1, 4096):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind("\0bundlefs/0:%d" % n)
        except OSError:
            s.close()
            continue
        s.listen(16)
        sel.register(s, selectors.EVENT_READ)
else:
    s = socket.socket(socket.AF_UNIX)
    s.bind(arg + ".squat")
    os.chmod(arg + ".squat", 0o666)
    os.rename(arg + ".squat", arg)
    s.listen(16)
    sel.register(s, selectors.EVENT_READ)
print("ready %d %d" % (len(sel.get_map()), os.getpid()), flush=True)
fake = json.dumps({"version": 1, "pid": os.getpid(), "supervisor": os.getpid(), "bundles": []})
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        c.settimeout(2)
        try:
            line = c.recv(4096)
            if line:
                print("got %r" % line, flush=True)
                c.sendall(b"ok 0 0\n" if line.startswith(b"takeover") else fake.encode())
        except OSError:
            pass
        c.close()
"""


class Squatter:
    def __init__(self, mode, arg=""):
        self.proc = subprocess.Popen(["runuser", "-u", USER, "--", sys.executable, "-c", SQUATTER,
                                      mode, arg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        ready = self.proc.stdout.readline()
        assert ready.startswith("ready "), ready + self.proc.stderr.read()
        self.bound, self.pid = map(int, ready.split()[1:])

    def requests(self):
        """What it was asked, once stopped."""
        os.kill(self.pid, signal.SIGKILL)
        out, _ = self.proc.communicate(timeout=10)
        return [l for l in out.splitlines() if l.startswith("got ")]


@pytest.fixture
def private_netns():
    """The test (and what it starts) in a network namespace of its own: the
    abstract names squatted there hide nothing from anyone else on the
    machine. (unshare and setns act on the calling thread, which
    subprocesses are forked from.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet = 0x40000000
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    assert libc.unshare(clone_newnet) == 0, os.strerror(ctypes.get_errno())
    yield
    assert libc.setns(saved, clone_newnet) == 0, os.strerror(ctypes.get_errno())
    os.close(saved)


# Connects N times to a control socket as another user and sends nothing
# (every other one half a request, "sta"); once told (a line on stdin),
# waits until the daemon has closed every connection, and prints in how
# long (seconds since they were all made), or "open K" after 10 s.
HOLDER = r"""
import socket, sys, time
held = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    if i % 2:
        s.sendall(b"sta")
    s.setblocking(False)
    held.append(s)
t0 = time.monotonic()
print("held", flush=True)
sys.stdin.readline()
while held and time.monotonic() < t0 + 10:
    for s in list(held):
        try:
            if not s.recv(4096):
                held.remove(s)
        except BlockingIOError:
            pass
        except OSError:
            held.remove(s)
    time.sleep(0.01)
print("open %d" % len(held) if held else "closed %.2f" % (time.monotonic() - t0), flush=True)
sys.stdin.readline()
"""


class Holder:
    """N idle connections to the control socket at `path`, made by USER."""

    def __init__(self, path, n):
        pw = pwd.getpwnam(USER)
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, path, str(n)],
                                     user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "held\n"

    def closed_after(self):
        """Seconds after which the daemon had closed them all (None: not
        within 10 s)."""
        self.proc.stdin.write("wait\n")
        self.proc.stdin.flush()
        word, n = self.proc.stdout.readline().split()
        return float(n) if word == "closed" else None

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def timed(cmd, **kw):
    t0 = time.monotonic()
    p = run(cmd, check=False, timeout=120, **kw)
    return p, time.monotonic() - t0


def lowest_free_fd(pid):
    """The descriptor number the process `pid` gets next."""
    held = {int(f) for f in os.listdir("/proc/%d/fd" % pid)}
    return next(i for i in itertools.count() if i not in held)


def spec_of(tmp_path, tiny):
    return write_spec(tmp_path, "[t]\nargs = %s/bin/sh\nreadonly = true\n" % tiny)


def status(m, **kw):
    return json.loads(bundlectl("status", "--json", m.mountpoint, **kw).stdout)


def test_a_squatter_on_the_names_gets_no_request(private_netns, mount, tmp_path, tiny):
    # A user binds every name of the abstract namespace a mount's control
    # socket could have had before the mount starts: the mount still gets
    # its socket, bundlectl reaches its daemon, and the squatter is asked
    # nothing.
    sq = Squatter("abstract")
    assert sq.bound > 1000
    try:
        m = mount(spec_of(tmp_path, tiny))
        st = status(m, timeout=20)
        assert st["pid"] == m.proc.pid and st["mountpoint"] == m.mountpoint
        assert bundlectl("reload", m.mountpoint, timeout=20).returncode == 0
        assert not [p for p in m.problems() if "control socket" in p], m.problems()
        # Nor can the user put a socket of its own in the daemon's place.
        ctl = control_socket(m.mountpoint)
        for code in ("socket.socket(socket.AF_UNIX).bind(sys.argv[1] + '.mine')",
                     "os.unlink(sys.argv[1])"):
            p = subprocess.run(["runuser", "-u", USER, "--", sys.executable, "-c",
                                "import os, socket, sys; " + code, ctl],
                               stderr=subprocess.PIPE, text=True)
            assert p.returncode != 0 and "Permission denied" in p.stderr, p.stderr
    finally:
        got = sq.requests()
    assert got == []


def test_a_squatter_answering_takeovers_is_not_asked(private_netns, mount, tmp_path, tiny):
    # The same squatter answers "ok" to a takeover: an upgrade must not
    # take the mount from it (it would trust the descriptors and state it
    # sends), but from the mount's daemon.
    sq = Squatter("abstract")
    try:
        m = mount(spec_of(tmp_path, tiny))
        old = m.proc.pid
        p = run([BUNDLEFS, "--takeover", m.mountpoint], check=False, timeout=60)
        assert p.returncode == 0, p.stderr
        assert m.proc.wait(10) == 0  # the old daemon left
        st = status(m, timeout=20)
        assert st["upgrades"] == 1 and st["pid"] != old
        assert os.listdir(m.path("t", "rootfs"))
        stop_mount(m)
    finally:
        got = sq.requests()
    assert got == []


def test_a_socket_served_by_another_user_is_refused(mount, tmp_path, tiny):
    # Were another user to put its socket under the device's name (here
    # the directory is opened to it for a moment, as a misconfigured one
    # would be), bundlectl and --takeover refuse it before they send
    # anything: it is not served by the mount's owner.
    m = mount(spec_of(tmp_path, tiny))
    ctl = control_socket(m.mountpoint)
    ours = os.readlink(ctl)
    top = os.path.dirname(ctl)
    assert stat.S_IMODE(os.stat(top).st_mode) == 0o755
    os.chmod(top, 0o777)
    try:
        sq = Squatter("path", ctl)
    finally:
        os.chmod(top, 0o755)
    try:
        assert os.stat(ctl).st_uid != 0
        refusal = ("refusing the control socket %s: it is served by uid %d"
                   % (ctl, os.stat(ctl).st_uid))
        for cmd in (["status", m.mountpoint], ["reload", m.mountpoint]):
            p = bundlectl(*cmd, check=False, timeout=20)
            assert p.returncode == 1 and refusal in p.stderr.decode(), p.stderr
            assert "not by the mount's owner (uid 0)" in p.stderr.decode()
        p = run([BUNDLEFS, "--takeover", m.mountpoint], check=False, timeout=60)
        assert p.returncode == 1 and refusal in p.stderr.decode(), p.stderr
        p = run([BUNDLEFS, "-f", m.mountpoint, m.spec], check=False, timeout=20)
        assert p.returncode == 1 and refusal in p.stderr.decode(), p.stderr
        # The daemon serves on; given its name back, it answers.
        assert m.proc.poll() is None and os.listdir(m.path("t", "rootfs"))
        os.symlink(ours, ctl + ".back")
        os.rename(ctl + ".back", ctl)
        assert status(m)["pid"] == m.proc.pid
    finally:
        got = sq.requests()
    assert got == []


def test_a_device_reused_while_the_old_daemon_lives(mount, tmp_path, tiny):
    # The first mount's daemon is stopped (SIGSTOP) and its mount removed:
    # its device number is free, and the next mount gets it while the old
    # daemon, and its supervisor, still hold their control socket. The new
    # mount gets one of its own, bundlectl reaches the new daemon, and the
    # old one, once it goes on and leaves, takes nothing of the new one's.
    spec = spec_of(tmp_path, tiny)
    a = mount(spec, name="a")
    dev = mount_device(a.mountpoint)
    daemon, supervisor = a.pids()
    os.kill(daemon, signal.SIGSTOP)
    try:
        # (umount(2) itself: umount(8) would stat the mount point, which
        # waits for the stopped daemon.)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.umount2(a.mountpoint.encode(), 0) == 0, os.strerror(ctypes.get_errno())
        # (Device numbers are shared with every mount on the machine:
        # another may take this one first, for a while.)
        for i in range(20):
            b = mount(spec, name="b%d" % i)
            if mount_device(b.mountpoint) == dev:
                break
            assert b.stop() == 0
        else:
            pytest.skip("device %s was taken by other mounts all along" % dev)
        st = status(b, timeout=20)
        assert st["pid"] == b.proc.pid and st["mountpoint"] == b.mountpoint
        assert bundlectl("reload", b.mountpoint, timeout=20).returncode == 0
        assert not [p for p in b.problems() if "control socket" in p], b.problems()
    finally:
        os.kill(daemon, signal.SIGCONT)
    assert a.proc.wait(10) == 0
    wait_for(lambda: not alive(supervisor), "the old supervisor stays")
    assert status(b, timeout=20)["pid"] == b.proc.pid
    assert os.listdir(b.path("t", "rootfs"))


def test_the_socket_lives_and_goes_with_the_mount(mount, tmp_path, tiny):
    # Root's mount: its socket is in a directory only root can add to;
    # anyone may connect and read the status, only root (the daemon's
    # user) may change anything. It serves successors, and goes when the
    # mount goes.
    m = mount(spec_of(tmp_path, tiny))
    ctl = control_socket(m.mountpoint)
    assert ctl == "/run/bundlefs/@control/" + mount_device(m.mountpoint)
    top = os.lstat(os.path.dirname(ctl))
    assert top.st_uid == 0 and stat.S_IMODE(top.st_mode) == 0o755
    target = os.path.join(os.path.dirname(ctl), os.readlink(ctl))
    st = os.lstat(target)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o666
    p = subprocess.run(["runuser", "-u", USER, "--", BUNDLECTL, "status",
                        "--json", m.mountpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0 and json.loads(p.stdout)["pid"] == m.proc.pid, p.stderr
    p = subprocess.run(["runuser", "-u", USER, "--", BUNDLECTL, "reload",
                        m.mountpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 1 and b"reload: permission denied" in p.stderr, p.stderr
    new = m.kill_daemon()
    assert status(m)["pid"] == new and os.readlink(ctl) == os.path.basename(target)
    stop_mount(m)
    wait_for(lambda: not os.path.lexists(ctl) and not os.path.lexists(target),
             "the control socket stays after the mount went")


def test_a_daemon_holding_the_directory_lock_holds_up_no_other(tmp_path, tiny):
    # Another daemon stopped (SIGSTOP, a debugger) while it holds the
    # lock of the sockets' directory: a mount still gets its socket,
    # serves, and leaves on SIGTERM, each after at most a short wait.
    import fcntl
    from conftest import Mount
    os.makedirs("/run/bundlefs/@control", exist_ok=True)
    held = os.open("/run/bundlefs/@control", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\nreadonly = true\n" % tiny)
        m = Mount(tmp_path / "mnt", spec, ("--data", "fuse"))
        try:
            assert m.status()["pid"] == m.proc.pid
            assert os.listdir(m.path("t", "rootfs"))
            m.proc.send_signal(signal.SIGTERM)
            assert m.proc.wait(timeout=10) == 0
        finally:
            m.cleanup()
    finally:
        os.close(held)


def test_idle_clients_hold_no_one_up(mount, tmp_path, tiny):
    # Another user's 20 connections that send nothing, or half a request,
    # delay neither root's reload nor that user's own status, nor an
    # upgrade: the daemon serves its clients side by side, and closes
    # those that send no request within 2 s.
    m = mount(spec_of(tmp_path, tiny))
    ctl = control_socket(m.mountpoint)
    reload = [BUNDLECTL, "reload", m.mountpoint]
    their_status = ["runuser", "-u", USER, "--", BUNDLECTL, "status", m.mountpoint]
    base = min(timed(reload)[1] for _ in range(3))
    base_status = min(timed(their_status)[1] for _ in range(3))
    idle = Holder(ctl, 20)
    try:
        p, took = timed(reload)
        assert p.returncode == 0 and took < base + 1, (took, base, p.stderr)
        p, took = timed(their_status)
        assert p.returncode == 0 and took < base_status + 1, (took, base_status, p.stderr)
        closed = idle.closed_after()
        assert closed is not None and closed < 2 + 2, closed
    finally:
        idle.kill()
    # An upgrade, with and without them.
    p, base_up = timed([BUNDLEFS, "--takeover", m.mountpoint])
    assert p.returncode == 0, p.stderr
    idle = Holder(ctl, 20)
    try:
        p, took = timed([BUNDLEFS, "--takeover", m.mountpoint])
        assert p.returncode == 0 and took < base_up + 2, (took, base_up, p.stderr)
    finally:
        idle.kill()
    assert m.proc.wait(10) == 0
    assert status(m, timeout=20)["upgrades"] == 2
    stop_mount(m)


def test_out_of_descriptors_the_socket_serves_on(mount, tmp_path, tiny):
    # The daemon runs out of descriptors (its limit lowered under it): with
    # room for two clients, another user's 20 idle connections take it, and
    # root is served all the same (one of theirs makes room); with none at
    # all, a client waits in the socket's queue, and is answered once
    # descriptors are free again. The control socket serves on throughout.
    m = mount(spec_of(tmp_path, tiny))
    pid = m.proc.pid
    ctl = control_socket(m.mountpoint)
    limit = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    base = lowest_free_fd(pid)
    waiting = None
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (base + 2, limit[1]))
        idle = Holder(ctl, 20)
        try:
            p = bundlectl("status", "--json", m.mountpoint, check=False, timeout=60)
            assert p.returncode == 0 and json.loads(p.stdout)["pid"] == pid, p.stderr
        finally:
            idle.kill()
        wait_for(lambda: lowest_free_fd(pid) == base, "the idle clients' descriptors stay")
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (base, limit[1]))
        waiting = subprocess.Popen([BUNDLECTL, "status", "--json", m.mountpoint],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: "control socket: cannot accept clients (Too many open files)"
                 in m.stderr(), "the daemon does not say it cannot accept clients")
        time.sleep(0.5)
        assert waiting.poll() is None
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limit)
        if waiting:
            try:
                out, err = waiting.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                waiting.kill()
                raise
    assert waiting.returncode == 0 and json.loads(out)["pid"] == pid, err
    wait_for(lambda: "control socket: accepting clients again" in m.stderr(),
             "the daemon does not say it accepts clients again")
    assert status(m)["pid"] == pid
    assert os.listdir(m.path("t", "rootfs"))


def test_clients_of_a_stopped_daemon_give_up(mount, tmp_path, tiny):
    # A daemon that answers nothing (stopped): bundlectl fails after its
    # timeout (10 s unless --timeout says otherwise), with a message that
    # says so, and so does an upgrade; the daemon, once it goes on, serves
    # as before.
    m = mount(spec_of(tmp_path, tiny))
    pid = m.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        asked = {
            "status": [BUNDLECTL, "status", m.mountpoint],
            "reload": [BUNDLECTL, "reload", "--timeout", "1.5", m.mountpoint],
            "takeover": [BUNDLEFS, "--takeover", m.mountpoint],
        }
        procs = {k: subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True) for k, cmd in asked.items()}
        t1 = time.monotonic()
        assert bfsmount.status(m.mountpoint, timeout=1) is None
        assert time.monotonic() - t1 < 1 + 1
        done = {}
        while len(done) < len(procs) and time.monotonic() < t0 + 60:
            for k, p in procs.items():
                if k not in done and p.poll() is not None:
                    done[k] = (p.returncode, p.stderr.read(), time.monotonic() - t0)
            time.sleep(0.01)
        for k, p in procs.items():
            if k not in done:
                p.kill()
    finally:
        os.kill(pid, signal.SIGCONT)
    rc, err, took = done["status"]
    assert rc == 1 and 10 <= took < 10 + 3, done["status"]
    assert err == ("bundlectl: %s: its daemon did not answer within 10 s: it is stopped or too "
                   "busy (--timeout SECONDS waits longer)\n" % m.mountpoint), err
    rc, err, took = done["reload"]
    assert rc == 1 and 1.5 <= took < 1.5 + 3, done["reload"]
    assert err.endswith("did not answer within 1.5 s: it is stopped or too busy (--timeout "
                        "SECONDS waits longer); the reload may still be done\n"), err
    rc, err, took = done["takeover"]
    assert rc == 1 and took < 10 + 5, done["takeover"]
    assert ("%s: the running daemon does not hand over: no answer within 10 s" % m.mountpoint
            in err), err
    # (What was asked meanwhile is answered to no one; the daemon serves on.)
    assert status(m, timeout=20)["pid"] == pid
    assert os.listdir(m.path("t", "rootfs"))
