# The daemon's log: the priority of each line (sd-daemon's prefixes on a
# foreground daemon's stderr, the journal's stream, syslog(3) through a
# /dev/log of the test's own, the level in a --log file), the events it
# reports, -v, and a --log file that logrotate moves.
import datetime
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUNDLEFS, STORE, is_mounted, run, stop_mount, wait_for, write_spec

GONE = STORE + "/" + "7" * 32 + "-gone"


def bad_spec(tiny):
    return "[t]\nargs = %s/bin/sh\n\nreadonly = maybe\n" % tiny


@pytest.fixture(autouse=True)
def leftovers(tmp_path):
    """Whatever a failing test leaves running (daemons started in the
    background or in a mount namespace of their own, which no fixture
    stops) is killed, and its mounts detached."""
    yield
    mine = []
    for p in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if p.isdigit() and b"bundlefs" in cmd and str(tmp_path).encode() in cmd:
            mine.append(int(p))
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for p in mine:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
    with open("/proc/self/mountinfo") as f:
        points = [l.split()[4] for l in f if l.split()[4].startswith(str(tmp_path) + "/")]
    for point in points:
        subprocess.run(["fusermount3", "-u", "-z", point], stderr=subprocess.DEVNULL)


def version():
    """bundlefs's version and its libfuse's, as --version says them."""
    out = run([BUNDLEFS, "--version"]).stdout.decode()
    m = re.match(r"bundlefs (\S+) \(libfuse (\S+),", out)
    return m.group(1), m.group(2)


def good_spec(tmp_path, tiny):
    return write_spec(tmp_path, "[t]\nargs = %s/bin/sh\nreadonly = true\n\n[gone]\nargs = %s/bin/x\n"
                      "readonly = true\n" % (tiny, GONE))


def human(n):
    """A size as the daemon writes it (and bundlectl status)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    v, u = float(n), 0
    while v >= 1024 and u + 1 < len(units):
        v /= 1024
        u += 1
    return "%.1f %s" % (v, units[u]) if u else "%d B" % n


def closure_nar_size(path):
    """`nix path-info -S`: the closure's NAR size, as Nix counts it."""
    out = run(["nix", "--extra-experimental-features", "nix-command", "path-info", "-S",
               path]).stdout.decode()
    return int(out.split()[1])


def expect(lines, prio, pattern):
    """The one line matching `pattern` (a regex, whole message); it must
    have priority `prio`. Returns its index."""
    found = [i for i, (_, msg) in enumerate(lines) if re.fullmatch(pattern, msg)]
    assert len(found) == 1, (pattern, lines)
    assert lines[found[0]][0] == prio, (pattern, lines[found[0]])
    return found[0]


def test_foreground_lines_carry_their_priority(tmp_path, mount, nix, tiny):
    spec = good_spec(tmp_path, tiny)
    m = mount(spec)
    mnt = re.escape(m.mountpoint)
    assert os.listdir(m.path("t", "rootfs") + STORE)
    with pytest.raises(OSError):
        os.listdir(m.path("gone", "rootfs"))
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any("reloaded" in msg for _, msg in m.lines()), "no reload")
    with open(spec, "w") as f:
        f.write(bad_spec(tiny))
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any("has problems" in msg for _, msg in m.lines()), "no failed reload")
    assert m.stop() == 0
    lines = m.lines()
    # Every line says its priority (sd-daemon's "<N>"), then "bundlefs: ".
    assert all(prio is not None for prio, _ in lines), m.stderr()
    assert all(l.startswith("<%d>bundlefs: " % p) for l, (p, _) in
               zip(m.stderr().splitlines(), lines))
    ver, fuse = version()
    s = re.escape(spec)
    first = expect(lines, 5, r"mounted %s \(spec %s, pid %d, bundlefs %s, libfuse %s\)"
                   % (mnt, s, m.proc.pid, re.escape(ver), re.escape(fuse)))
    ready = expect(lines, 5, r"ready: %s serves 2 bundles \(started in \d+ ms; passthrough "
                   r"(on|off)\)" % mnt)
    expect(lines, 6, r'bundle "t": resolved in \d+ ms: %d store paths, NAR size %s'
           % (len(nix.closure(tiny)), re.escape(human(closure_nar_size(tiny)))))
    # Tried again on a later use: a warning.
    expect(lines, 4, r'%s:6: bundle "gone": args: %s: missing from the store' % (s, GONE))
    assert [l for l in lines if l[1] == "SIGHUP: reloading %s" % spec] == \
        [(6, "SIGHUP: reloading %s" % spec)] * 2
    expect(lines, 5, r"reloaded %s: generation 2, 2 bundles, 0 changed" % s)
    # A reload refused: errors.
    expect(lines, 3, r'%s:4: bundle "t": readonly: expected true or false.*' % s)
    expect(lines, 3, r"reload: %s has problems; still serving generation 2" % s)
    stop = expect(lines, 5, r"SIGTERM: unmounting %s" % mnt)
    gone = expect(lines, 5, r"%s was unmounted" % mnt)
    last = expect(lines, 5, r"exiting \(status 0\)")
    assert first < ready < stop < gone < last == len(lines) - 1
    # Without -v, no debug lines.
    assert not [l for l in lines if l[0] == 7]


@pytest.mark.parametrize("args", [["-v"], ["--verbose"], ["-o", "verbose"], ["-d"]])
def test_verbose_adds_debug_lines(tmp_path, mount, tiny, args):
    m = mount(good_spec(tmp_path, tiny), *args)
    assert os.listdir(m.path("t", "rootfs") + STORE)
    assert m.stop() == 0
    debug = [msg for prio, msg in m.lines() if prio == 7]
    assert any(msg.startswith("settings: ") for msg in debug), m.stderr()
    assert 'bundle "t": resolving its closure' in debug
    if args == ["-d"]:
        # libfuse's own lines, every request (FUSE debugging), as debug
        # lines of the daemon's.
        assert any(re.match(r"unique: \d+, opcode: LOOKUP", msg) for msg in debug), debug[:20]
    assert m.problems() == []


def run_until_ready(args, env, stderr):
    """Starts bundlefs -f with stderr to a file; returns once it is ready."""
    p = subprocess.Popen([BUNDLEFS, "-f", *args], stdout=subprocess.DEVNULL, stderr=stderr,
                         env=env)
    wait_for(lambda: p.poll() is not None or "ready: " in open(stderr.name).read(),
             "bundlefs did not serve")
    assert p.poll() is None, open(stderr.name).read()
    return p


def test_stderr_to_the_journal(tmp_path, tiny):
    spec = good_spec(tmp_path, tiny)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    for journal in (True, False):
        with open(tmp_path / ("stderr-%s" % journal), "w+") as err:
            st = os.fstat(err.fileno())
            # systemd's JOURNAL_STREAM names the stream it connected; a
            # process whose stderr is something else (here: another inode)
            # must not take it for the journal.
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev,
                                                             st.st_ino + (0 if journal else 1)))
            p = run_until_ready([str(mnt), spec], env, err)
            p.send_signal(signal.SIGTERM)
            assert p.wait(10) == 0
            text = open(err.name).read()
        first = text.splitlines()[0]
        if journal:
            # The journal records the sender's name itself.
            assert first.startswith("<5>mounted %s (spec %s, pid %d" % (mnt, spec, p.pid)), text
            assert "bundlefs:" not in text
            assert all(re.match(r"<[0-7]>[^<]", l) for l in text.splitlines()), text
        else:
            assert first.startswith("<5>bundlefs: mounted %s" % mnt), text
    assert not is_mounted(mnt)
    # A background daemon's problems before it detaches reach the
    # command's stderr, also with their priority when that is the journal.
    with open(tmp_path / "stderr-bg", "w+") as err:
        st = os.fstat(err.fileno())
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        bad = tmp_path / "no" / "such" / "dir" / "log"
        p = subprocess.run([BUNDLEFS, "--log", str(bad), str(mnt), spec], stdout=subprocess.DEVNULL,
                           stderr=err, env=env, timeout=20)
        assert p.returncode == 1
        assert open(err.name).read() == "<3>--log %s: No such file or directory\n" % bad


def test_a_bad_spec_at_start_is_an_error(tmp_path, tiny):
    spec = write_spec(tmp_path, bad_spec(tiny))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    want = '%s:4: bundle "t": readonly: expected true or false' % spec
    # (In the background, FILE:LINE: as a compiler says it: test_badspec.)
    for journal in (False, True):
        with open(tmp_path / ("stderr-%s" % journal), "w+") as err:
            st = os.fstat(err.fileno())
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev,
                                                             st.st_ino + (0 if journal else 1)))
            p = subprocess.run([BUNDLEFS, "-f", str(mnt), spec], stdout=subprocess.DEVNULL,
                               stderr=err, env=env, timeout=20)
            assert p.returncode == 2
            text = open(err.name).read()
        assert text.startswith(("<3>" if journal else "<3>bundlefs: ") + want), text
    assert not is_mounted(mnt)


class DevLog:
    """A /dev/log of the test's own: a datagram socket that syslog(3)
    writes to, bind-mounted on /dev/log in a mount namespace where /dev
    is an overlay (so that nothing changes in the machine's /dev, which
    here has no /dev/log at all). Run commands there with run()."""

    LINE = re.compile(r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d bundlefs\[(\d+)\]: (.*)")

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.path = str(tmp_path / "devlog")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.got = []
        self.stopped = False
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()
        for d in ("upper", "work"):
            (tmp_path / d).mkdir()

    def read(self):
        # (Read at once: a full socket would make syslog(3) wait.)
        while not self.stopped:
            try:
                self.got.append(self.sock.recv(65536).decode())
            except socket.timeout:
                pass

    def run(self, cmd, **kw):
        script = ('mount -t overlay overlay -o lowerdir=/dev,upperdir="$1",workdir="$2" /dev && '
                  'touch /dev/log && mount --bind "$3" /dev/log && shift 3 && exec "$@"')
        return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                    str(self.dir / "upper"), str(self.dir / "work"), self.path, *cmd], **kw)

    def lines(self):
        """(facility * 8 + priority, pid, message) of each line received."""
        out = []
        for g in list(self.got):
            m = self.LINE.fullmatch(g.rstrip("\n"))
            assert m, g
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        return out

    def wait(self, pattern, timeout=10):
        """The first line matching `pattern` (a regex, whole message)."""
        found = []
        wait_for(lambda: found.extend(l for l in self.lines() if re.fullmatch(pattern, l[2]))
                 or found, "no %r in syslog: %s" % (pattern, self.got), timeout)
        return found[0]

    def close(self):
        self.stopped = True
        self.t.join()
        self.sock.close()


@pytest.mark.parametrize("verbose", [False, True])
def test_syslog_priorities(tmp_path, tiny, verbose):
    spec = good_spec(tmp_path, tiny)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = DevLog(tmp_path)
    try:
        # In the background, with a syslog there (and no --log): to syslog.
        log.run([BUNDLEFS, *(["-v"] if verbose else []), str(mnt), spec], timeout=30)
        facility_pid = log.wait(r"mounted %s \(spec .*" % re.escape(str(mnt)))
        pid = facility_pid[1]
        # LOG_DAEMON (3) * 8 + the priority.
        assert facility_pid[0] == 3 * 8 + 5
        assert log.wait(r"ready: .*")[0] == 29
        # The mount is in the daemon's namespace.
        p = run(["nsenter", "-t", str(pid), "-m", "ls", str(mnt / "t" / "rootfs") + STORE])
        assert p.stdout.split()
        run(["nsenter", "-t", str(pid), "-m", "ls", str(mnt / "gone" / "rootfs")], check=False)
        assert log.wait(r'bundle "t": resolved in .*')[0] == 30
        assert log.wait(r'.*bundle "gone": args: %s: missing from the store' % GONE)[0] == 28
        os.kill(pid, signal.SIGHUP)
        assert log.wait(r"reloaded .*")[0] == 29
        with open(spec, "w") as f:
            f.write(bad_spec(tiny))
        os.kill(pid, signal.SIGHUP)
        assert log.wait(r'.*:4: bundle "t": readonly: expected true or false.*')[0] == 27
        assert log.wait(r"reload: .* has problems; still serving generation 2")[0] == 27
        os.kill(pid, signal.SIGTERM)
        assert log.wait(r"SIGTERM: unmounting .*")[0] == 29
        assert log.wait(r"exiting \(status 0\)")[0] == 29
        lines = log.lines()
        assert all(l[0] >> 3 == 3 for l in lines)  # all daemon.*
        # (The supervisor says it started, a debug line.)
        assert all(l[1] == pid for l in lines if l[0] != 31), lines
        debug = [l for l in lines if l[0] == 31]
        if verbose:
            assert any(l[2].startswith("settings: ") for l in debug), lines
        else:
            assert debug == []
    finally:
        log.close()


def background(tmp_path, spec, log, env=None):
    """Mounts in the background with --log; returns the mount point and the
    daemon's pid (from the log)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    run([BUNDLEFS, "--log", str(log), str(mnt), spec], env=env, timeout=30)
    wait_for(lambda: "ready: " in log.read_text(), "no ready line")
    pid = int(re.search(r"mounted \S+ \(spec \S+, pid (\d+)", log.read_text()).group(1))
    return mnt, pid


def stop(mnt, pid, log):
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not is_mounted(mnt), "the mount stays after SIGTERM")
    wait_for(lambda: "exiting (status 0)" in log.read_text(), "no exit line")


def test_log_file_lines_are_dated_with_their_zone(tmp_path, tiny):
    log = tmp_path / "log"
    # (A zone of Nix's and glibc's own syntax, without tzdata: UTC+05:30.)
    mnt, pid = background(tmp_path, good_spec(tmp_path, tiny), log,
                          env=dict(os.environ, TZ="XYZ-05:30"))
    stop(mnt, pid, log)
    lines = log.read_text().splitlines()
    now = datetime.datetime.now(datetime.timezone.utc)
    for line in lines:
        m = re.fullmatch(r"(\S+) bundlefs\[(\d+)\]: (error|warning|notice|info|debug): .+", line)
        assert m, line
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S%z")
        assert m.group(1).endswith("+0530") and abs((now - when).total_seconds()) < 60, line
    assert re.search(r": notice: mounted %s .*\n.*: notice: ready: " % mnt, log.read_text())


def test_sigusr1_reopens_the_log_file(tmp_path, tiny):
    log = tmp_path / "log"
    spec = good_spec(tmp_path, tiny)
    mnt, pid = background(tmp_path, spec, log)
    try:
        # logrotate moves the file, then signals.
        os.rename(log, tmp_path / "log.1")
        os.kill(pid, signal.SIGUSR1)
        wait_for(log.exists, "SIGUSR1 did not open the log file again")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "reloaded" in log.read_text(), "the new file does not get new lines")
        old = (tmp_path / "log.1").read_text()
        assert "notice: mounted %s" % mnt in old and "notice: ready: " in old
        assert "reloaded" not in old
        assert "info: SIGUSR1: log file opened again" in log.read_text()
        # Moved without a signal: the next line goes to a new file all
        # the same.
        os.rename(log, tmp_path / "log.2")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: log.exists() and "generation 3" in log.read_text(),
                 "a moved log file is not followed")
        assert "generation 3" not in (tmp_path / "log.2").read_text()
    finally:
        stop(mnt, pid, log)


def test_failover_and_upgrade_are_logged(tmp_path, mount, tiny):
    spec = good_spec(tmp_path, tiny)
    log = tmp_path / "log"
    m = mount(spec, "--log", str(log))  # (successors log there)
    _, supervisor = m.pids()
    new = m.kill_daemon()
    wait_for(lambda: "took " in m.log(), "the successor logged nothing")
    ver, _ = version()
    text = m.log()
    assert re.search(r"bundlefs\[%d\]: warning: the daemon serving %s is gone; starting another\n"
                     % (supervisor, re.escape(m.mountpoint)), text), text
    assert re.search(r"bundlefs\[%d\]: notice: took %s over \(failover: the daemon before died, "
                     r"bundlefs %s; generation 1, \d+ nodes; serving \d+ ms after start\)\n"
                     % (new, re.escape(m.mountpoint), re.escape(ver)), text), text
    # A live upgrade: the old daemon says it handed over, the new one
    # that it took over.
    p = run([BUNDLEFS, "--takeover", m.mountpoint], check=False, timeout=60)
    assert p.returncode == 0, p.stderr
    upgraded, _ = m.pids()
    wait_for(lambda: "live upgrade, bundlefs" in m.log(), "the new daemon logged nothing")
    wait_for(lambda: "handed %s over" % m.mountpoint in m.log(), "the old daemon logged nothing")
    text = m.log()
    assert re.search(r"bundlefs\[%d\]: notice: handed %s over to the new daemon \(live upgrade\); "
                     r"exiting\n" % (new, re.escape(m.mountpoint)), text), text
    assert re.search(r"bundlefs\[%d\]: notice: took %s over \(live upgrade, bundlefs %s; "
                     % (upgraded, re.escape(m.mountpoint), re.escape(ver)), text), text
    stop_mount(m)
    wait_for(lambda: "bundlefs[%d]: notice: exiting (status 0)" % upgraded in m.log(),
             "no exit line")
    assert m.problems() == []  # (the first daemon's own stderr, -f)
