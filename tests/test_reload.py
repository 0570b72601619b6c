# A mount that runs for months: live reload (SIGHUP, bundlectl reload,
# --watch), refusing to stack mounts, unmounting only our own mount,
# systemd readiness, mount(8) and fstab, status, logging.
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (BUNDLECTL, BUNDLEFS, NATIVE, ROOT, STORE, Mount, bfsmount, bundlectl,
                      is_mounted, run, wait_for, write_spec)
from nixfix import NIX_OPTIONS


def roots_of(pid):
    d = "/nix/var/nix/gcroots/bundlefs/%d" % pid
    return sorted(os.readlink(os.path.join(d, n)) for n in os.listdir(d)) if os.path.isdir(d) else None


def status(mnt):
    return json.loads(bundlectl("status", "--json", str(mnt)).stdout)


READER_LOOP = "PATH=%s/bin; i=0; while [ $i -lt 40 ]; do cat %s/bin/entrypoint > /dev/null || echo FAIL; " \
              "ls /nix/store > /dev/null || echo FAIL; i=$((i+1)); sleep 0.05; done; echo done"


def test_reload_adds_removes_swaps_and_keeps_running_containers(tmp_path, runc, nix, tiny, app):
    t2 = nix.build("tiny", salt="reload-%d-%d" % (os.getpid(), time.time_ns()))
    spec = tmp_path / "spec.conf"
    spec.write_text("[keep]\nargs = %s/bin/sh\n[swap]\nargs = %s/bin/sh -c '%s'\n"
                    "[gone]\nargs = %s/bin/entrypoint\n"
                    % (tiny, tiny, READER_LOOP % (tiny, tiny), t2))
    with Mount(tmp_path / "mnt", str(spec)) as m:
        keep_ino = os.stat(m.path("keep", "rootfs")).st_ino
        os.listdir(m.path("keep", "rootfs") + STORE)
        os.listdir(m.path("gone", "rootfs") + STORE)
        assert t2 in roots_of(m.proc.pid)
        old_config = open(m.path("swap", "config.json"), "rb").read()
        # A container runs from the bundle that is about to change, and a
        # reader holds one of its files and directories open.
        cid = "bfs-reload-%d" % os.getpid()
        runc.ids.append(cid)
        container = subprocess.Popen(["runc", "--root", runc.root, "run", "-b", m.path("swap"), cid],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        held = open(m.path("swap", "rootfs") + tiny + "/bin/entrypoint", "rb")
        held_dir = os.open(m.path("swap", "rootfs") + STORE, os.O_RDONLY)
        time.sleep(0.5)

        spec.write_text("[keep]\nargs = %s/bin/sh\n[swap]\nargs = %s/bin/app swapped\n"
                        "[new]\nargs = %s/bin/sh\n" % (tiny, app, tiny))
        r = bundlectl("reload", m.mountpoint)
        assert b"generation 2" in r.stdout

        assert sorted(os.listdir(m.mountpoint)) == ["keep", "new", "swap"]
        with pytest.raises(FileNotFoundError):
            os.stat(m.path("gone"))
        new_config = open(m.path("swap", "config.json"), "rb").read()
        assert new_config != old_config
        assert new_config == bundlectl("config", str(spec), "swap").stdout
        assert sorted(os.listdir(m.path("swap", "rootfs") + STORE)) == [
            os.path.basename(p) for p in nix.closure(app)]
        assert os.listdir(m.path("new", "rootfs") + STORE)
        # the unchanged bundle is the same node, its closure not resolved again
        assert os.stat(m.path("keep", "rootfs")).st_ino == keep_ino
        # the old tree stays whole for those who hold it
        assert held.read().startswith(b"#!")
        assert sorted(os.listdir(held_dir)) == [os.path.basename(p) for p in nix.closure(tiny)]
        out, err = container.communicate(timeout=60)
        assert container.returncode == 0, err
        assert out.decode().split() == ["done"], out
        held.close()
        os.close(held_dir)

        # A spec with a problem changes nothing.
        spec.write_text("[keep]\nargs = %s/bin/sh\n[broken]\nreadonly = maybe\n" % tiny)
        r = bundlectl("reload", m.mountpoint, check=False)
        assert r.returncode == 2
        assert r.stderr.decode().startswith('%s:4: bundle "broken": readonly: expected true or false' % spec)
        assert sorted(os.listdir(m.mountpoint)) == ["keep", "new", "swap"]
        assert '%s:4: bundle "broken": readonly: expected true or false' % spec in m.stderr()
        st = status(m.mountpoint)
        assert st["generation"] == 2 and st["last_reload"]["ok"] is False

        # GC roots follow: the removed bundle's roots went with its last
        # user; the new closures are rooted.
        wait_for(lambda: t2 not in roots_of(m.proc.pid), "roots of a removed bundle stay")
        assert app in roots_of(m.proc.pid)


def test_sighup_and_watch_reload(tmp_path, tiny, app):
    spec = tmp_path / "spec.conf"
    spec.write_text("[a]\nargs = %s/bin/sh\n" % tiny)
    with Mount(tmp_path / "mnt", str(spec), ("--watch",)) as m:
        assert os.listdir(m.mountpoint) == ["a"]
        # an editor's save: a new file renamed over the old one
        tmp = tmp_path / "spec.conf.new"
        tmp.write_text("[a]\nargs = %s/bin/sh\n[b]\nargs = %s/bin/app\n" % (tiny, app))
        os.rename(tmp, spec)
        wait_for(lambda: sorted(os.listdir(m.mountpoint)) == ["a", "b"], "watch did not reload")
        # written in place
        with open(spec, "w") as f:
            f.write("[b]\nargs = %s/bin/app\n" % app)
        wait_for(lambda: os.listdir(m.mountpoint) == ["b"], "watch did not reload")
    spec.write_text("[a]\nargs = %s/bin/sh\n" % tiny)
    with Mount(tmp_path / "mnt2", str(spec)) as m:
        spec.write_text("[c]\nargs = %s/bin/sh\n" % tiny)
        m.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: os.listdir(m.mountpoint) == ["c"], "SIGHUP did not reload")
        assert m.proc.poll() is None


def nix_spec(tmp_path, out, names, tiny):
    """`nix-build -o OUT` of a spec (nix/bundlefs.nix) whose bundles `names`
    run tiny's sh; returns the store path OUT points to now."""
    expr = "(import %s/nix/bundlefs.nix {}).bundles { %s }" % (
        ROOT, " ".join('%s = { args = [ "%s/bin/sh" ]; };' % (n, tiny) for n in names))
    run(["nix-build", *NIX_OPTIONS, "-o", str(tmp_path / out), "-E", expr])
    return os.path.realpath(tmp_path / out)


def repoint(link, target):
    """As Nix and `ln -sf` do: a new link renamed over the old one."""
    tmp = str(link) + ".new"
    os.symlink(target, tmp)
    os.rename(tmp, link)


def test_watch_follows_nix_build_repointing_result(tmp_path, tiny):
    # `bundlefs --watch MNT result`: each nix-build -o result points the
    # link to a new store path, the spec file itself, which the mount
    # follows.
    nix_spec(tmp_path, "result", ["a"], tiny)
    assert os.path.isfile(os.path.realpath(tmp_path / "result"))
    with Mount(tmp_path / "mnt", str(tmp_path / "result"), ("--watch",)) as m:
        assert os.listdir(m.mountpoint) == ["a"]
        nix_spec(tmp_path, "result", ["a", "b"], tiny)
        wait_for(lambda: sorted(os.listdir(m.mountpoint)) == ["a", "b"],
                 "the mount stayed on the old generation")
        nix_spec(tmp_path, "result", ["c"], tiny)
        wait_for(lambda: os.listdir(m.mountpoint) == ["c"], "the mount stayed on generation 2")
        # each build read once
        assert status(m.mountpoint)["generation"] == 3


def test_watch_follows_a_profile_switch_at_either_link(tmp_path, tiny):
    # A Nix profile: p -> p-N-link -> /nix/store/...; a switch makes a new
    # generation link and repoints p. The generation link itself is
    # watched too.
    gens = [nix_spec(tmp_path, "gen%d" % i, names, tiny)
            for i, names in enumerate([["a"], ["a", "b"], ["c"]])]
    prof = tmp_path / "profiles"
    prof.mkdir()
    os.symlink(gens[0], prof / "p-1-link")
    os.symlink("p-1-link", prof / "p")
    with Mount(tmp_path / "mnt", str(prof / "p"), ("--watch",)) as m:
        assert os.listdir(m.mountpoint) == ["a"]
        os.symlink(gens[1], prof / "p-2-link")
        repoint(prof / "p", "p-2-link")
        wait_for(lambda: sorted(os.listdir(m.mountpoint)) == ["a", "b"],
                 "the profile switch was not followed")
        repoint(prof / "p-2-link", gens[2])
        wait_for(lambda: os.listdir(m.mountpoint) == ["c"],
                 "the repointed generation link was not followed")


def test_watch_follows_a_symlinked_directory(tmp_path, tiny):
    for v, name in [("v1", "a"), ("v2", "b")]:
        (tmp_path / v).mkdir()
        (tmp_path / v / "spec.conf").write_text("[%s]\nargs = %s/bin/sh\n" % (name, tiny))
    etc = tmp_path / "etc"
    etc.mkdir()
    os.symlink("../v1", etc / "bundles")
    with Mount(tmp_path / "mnt", str(etc / "bundles" / "spec.conf"), ("--watch",)) as m:
        assert os.listdir(m.mountpoint) == ["a"]
        repoint(etc / "bundles", "../v2")
        wait_for(lambda: os.listdir(m.mountpoint) == ["b"], "the directory link was not followed")
        assert status(m.mountpoint)["generation"] == 2
        # The watches moved with the link: the old directory's spec is
        # nothing to the mount any more, the new one's is.
        (tmp_path / "v1" / "spec.conf").write_text("[x]\nargs = %s/bin/sh\n" % tiny)
        time.sleep(0.5)
        assert status(m.mountpoint)["generation"] == 2
        (tmp_path / "v2" / "spec.conf").write_text("[b]\nargs = %s/bin/sh\n[c]\nargs = %s/bin/sh\n"
                                                   % (tiny, tiny))
        wait_for(lambda: sorted(os.listdir(m.mountpoint)) == ["b", "c"],
                 "a write in the new directory was not seen")


def test_a_second_mount_on_the_same_point_is_refused(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    with Mount(tmp_path / "mnt", spec) as m:
        # Named as it is, and through a symlink to it.
        os.symlink(m.mountpoint, tmp_path / "link")
        for point in (m.mountpoint, str(tmp_path / "link")):
            p = run([BUNDLEFS, "-f", point, spec], check=False, timeout=20)
            assert p.returncode == 1
            assert b"already a bundlefs mount" in p.stderr
            with open("/proc/self/mountinfo") as f:
                assert sum(l.split()[4] == m.mountpoint for l in f) == 1
            assert os.listdir(m.path("t", "rootfs"))


def test_sigkill_after_a_refused_stack_leaves_no_dead_mount(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        assert run([BUNDLEFS, m.mountpoint, spec], check=False).returncode == 1
        m.kill_all()
        wait_for(lambda: not is_mounted(m.mountpoint), "dead mount left behind")
    finally:
        m.cleanup()
    with Mount(tmp_path / "mnt", spec) as m2:
        assert os.listdir(m2.path("t", "rootfs"))


def test_unmounting_leaves_a_mount_stacked_on_ours_alone(tmp_path, tiny):
    # Something else mounted over the mount point: SIGTERM must not take
    # it down, and the watchdog of a killed daemon detaches our mount once
    # the one above is gone, not before.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        run(["mount", "-t", "tmpfs", "-o", "size=1m", "cover", m.mountpoint])
        m.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with open("/proc/self/mountinfo") as f:
            types = [l.split(" - ")[1].split()[0] for l in f if l.split()[4] == m.mountpoint]
        assert types == ["fuse.bundlefs", "tmpfs"], types
        assert "another mount covers it" in m.stderr()
        m.kill_all()
        time.sleep(0.5)
        assert is_mounted(m.mountpoint)
        run(["umount", m.mountpoint])  # the tmpfs
        wait_for(lambda: not is_mounted(m.mountpoint), "our dead mount stays")
    finally:
        m.cleanup()


def test_sigterm_while_covered_serves_on_until_sent_again(tmp_path, tiny):
    # Detaching a covered mount would take the one on top with it: the
    # daemon says so and goes on serving in full, and a SIGTERM once the
    # cover is gone unmounts it.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        held = os.open(m.path("t", "rootfs"), os.O_RDONLY | os.O_DIRECTORY)
        run(["mount", "-t", "tmpfs", "-o", "size=1m", "cover", m.mountpoint])
        m.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "another mount covers it" in m.stderr(), "no word of the cover")
        assert m.proc.poll() is None
        assert "SIGTERM: unmounting" not in m.stderr()
        assert os.listdir(held) and m.status()["pid"] == m.proc.pid
        os.close(held)
        run(["umount", m.mountpoint])  # the tmpfs
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=30) == 0
        assert not is_mounted(m.mountpoint)
    finally:
        m.cleanup()


class Notify:
    """A NOTIFY_SOCKET, as systemd gives a Type=notify service."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []
        self.sock.settimeout(0.05)

    def poll(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue
            return self.messages[-1]
        return None


def test_systemd_notifications(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    n = Notify(tmp_path / "notify")
    env = dict(os.environ, NOTIFY_SOCKET=n.path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.Popen([BUNDLEFS, "-f", str(mnt), spec], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    successor = supervisor = None
    try:
        msg = n.poll(10)
        assert msg == "READY=1\nSTATUS=serving 1 bundle (generation 1)", n.messages
        supervisor = status(str(mnt))["supervisor"]
        # READY=1 only once the mount serves: the kernel's INIT has been
        # answered, and a request goes through at once.
        assert is_mounted(mnt)
        t0 = time.monotonic()
        assert os.listdir(mnt) == ["t"]
        assert time.monotonic() - t0 < 1
        p.send_signal(signal.SIGHUP)
        assert n.poll(10).startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert n.poll(10) == "READY=1\nSTATUS=serving 1 bundle (generation 2)"
        # The daemon dies: its successor is the service's main process.
        p.kill()
        p.wait()
        msg = n.poll(10)
        assert msg and msg.startswith("MAINPID="), n.messages
        successor = int(msg.split("=")[1])
        assert status(str(mnt))["pid"] == successor
        os.kill(successor, signal.SIGHUP)
        assert n.poll(10).startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert n.poll(10) == "READY=1\nSTATUS=serving 1 bundle (generation 3)"
        os.kill(successor, signal.SIGTERM)
        assert n.poll(10) == "STOPPING=1"
        wait_for(lambda: not is_mounted(mnt), "the mount stays")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if is_mounted(mnt):
            run(["fusermount3", "-u", "-z", str(mnt)])
        for pid in (successor, supervisor):
            try:
                if pid:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_systemd_status_line(tmp_path, mount, tiny):
    # STATUS=, the line `systemctl status` shows, comes with READY=1 when
    # the mount serves and after every reload: bundles served, failed,
    # retrying, and a reload that failed.
    gone = STORE + "/" + "6" * 32 + "-gone"
    body = ("[ok]\nargs = %s/bin/sh\n[gone]\nargs = %s/bin/x\n[dir]\nargs = %s/bin/sh\n"
            "closure = %s\n" % (tiny, gone, tiny, tmp_path))
    spec = write_spec(tmp_path, body)
    n = Notify(tmp_path / "notify")
    m = mount(spec, env=dict(os.environ, NOTIFY_SOCKET=n.path))
    assert n.poll(10) == "READY=1\nSTATUS=serving 3 bundles (generation 1)", n.messages
    for name in ("gone", "dir"):
        with pytest.raises(OSError):
            os.listdir(m.path(name, "rootfs"))
    write_spec(tmp_path, body + "[new]\nargs = %s/bin/sh\n" % tiny)
    bundlectl("reload", m.mountpoint)
    assert n.poll(10).startswith("RELOADING=1\n")
    assert n.poll(10) == "READY=1\nSTATUS=serving 4 bundles (generation 2); 1 failed; 1 retrying"
    write_spec(tmp_path, body + "[new]\nreadonly = maybe\n")
    assert bundlectl("reload", m.mountpoint, check=False).returncode == 2
    assert n.poll(10).startswith("RELOADING=1\n")
    assert n.poll(10) == ("READY=1\nSTATUS=serving 4 bundles (generation 2); 1 failed; "
                          "1 retrying; the last reload failed: the spec has problems")


def test_mount_command_and_fstab(tmp_path, nix, tiny):
    # mount(8) runs mount.fuse3, which runs `bundlefs SPEC MOUNTPOINT -o
    # OPTIONS` from the system's PATH. In a mount namespace of its own the
    # test puts the built bundlefs on that PATH and its own line in fstab.
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\nreadonly = true\n" % tiny)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(BUNDLEFS, bindir / "bundlefs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    fstab = tmp_path / "fstab"
    log = tmp_path / "log"
    fstab.write_text("%s %s fuse.bundlefs gcroots=none,threads=4,log=%s,nofail 0 0\n"
                     % (spec, mnt, log))
    # (-x: the command that failed, in the assertion's message)
    script = """
set -ex
mount --bind {bindir} /usr/local/bin
mount -t fuse.bundlefs -o gcroots=none,log={log} {spec} {mnt}
cat {mnt}/t/config.json > {out}.config
ls {mnt}/t/rootfs/nix/store > {out}.store
umount {mnt}
mount --bind {fstab} /etc/fstab
mount {mnt}
ls {mnt} > {out}.fstab
umount {mnt}
""".format(bindir=bindir, spec=spec, mnt=mnt, out=tmp_path / "out", fstab=fstab, log=log)
    p = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            check=False, timeout=60)
    assert p.returncode == 0, (p.stderr.decode(), log.read_text() if log.exists() else None)
    out = str(tmp_path / "out")
    assert open(out + ".config", "rb").read() == bundlectl("config", spec, "t").stdout
    assert open(out + ".store").read().split() == [os.path.basename(p) for p in nix.closure(tiny)]
    assert open(out + ".fstab").read().split() == ["t"]
    assert not is_mounted(mnt)


def test_status_shows_daemon_and_bundles(tmp_path, nix, tiny, app):
    gone = STORE + "/" + "9" * 32 + "-gone"
    spec = write_spec(tmp_path, "[ok]\nargs = %s/bin/app\nreadonly = true\n[bad]\nargs = %s/bin/x\n[idle]\n"
                      "args = %s/bin/sh\n" % (app, gone, tiny))
    with Mount(tmp_path / "mnt", spec) as m:
        with open(m.path("ok", "rootfs") + app + "/bin/app", "rb") as f:
            size = len(f.read())
        with open(m.path("ok", "config.json"), "rb") as f:
            size_config = len(f.read())
        with pytest.raises(OSError):
            os.listdir(m.path("bad", "rootfs"))
        st = status(m.mountpoint)
        assert st["pid"] == m.proc.pid
        assert st["spec"] == spec and st["mountpoint"] == m.mountpoint
        assert st["generation"] == 1 and st["uptime"] >= 0 and st["nodes"] > 3
        assert st["rss"] > 1 << 20
        b = {x["name"]: x for x in st["bundles"]}
        assert b["ok"]["state"] == "ready"
        assert b["ok"]["paths"] == len(nix.closure(app))
        total = sum(os.lstat(os.path.join(d, f)).st_size for p in nix.closure(app)
                    for d, _, fs in os.walk(p) for f in fs)
        assert b["ok"]["bytes"] >= total > 0
        # (Bytes through the daemon: store files passed through are not,
        # nor is anything of a kernel-native root.)
        passed = st["passthrough"]["on"]
        if not NATIVE:
            assert b["ok"]["served"] >= size_config + (0 if passed else size)
            assert b["ok"]["requests"] > 3
        else:
            assert b["ok"]["data"]["path"] == "native", b["ok"]
        assert b["bad"]["state"] in ("retrying", "failed")
        assert b["bad"]["problems"] == [
            {"bundle": "bad", "kind": "resolve",
             "message": '%s:5: bundle "bad": args: %s: missing from the store' % (spec, gone)}]
        assert b["idle"]["state"] == "unresolved" and b["idle"]["requests"] == 0
        human = bundlectl("status", m.mountpoint).stdout.decode()
        assert "pid %d" % m.proc.pid in human
        lines = {l.split()[0]: l.split() for l in human.splitlines()[3:] if l and not l.startswith(" ")}
        assert lines["ok"][1] == "ready" and lines["idle"][1] == "unresolved"
        assert 'missing from the store' in human


def test_status_of_no_mount(tmp_path):
    p = bundlectl("status", str(tmp_path), check=False)
    assert p.returncode == 1
    assert b"no bundlefs mount there" in p.stderr


def test_background_daemon_logs_to_a_file(tmp_path, tiny):
    gone = STORE + "/" + "8" * 32 + "-gone"
    spec = write_spec(tmp_path, "[bad]\nargs = %s/bin/x\n" % gone)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "bundlefs.log"
    p = run([BUNDLEFS, "--log", str(log), str(mnt), spec], timeout=20)
    assert p.returncode == 0
    try:
        with pytest.raises(OSError):
            os.listdir(mnt / "bad" / "rootfs")
        wait_for(lambda: log.exists() and "missing from the store" in log.read_text(),
                 "the error did not reach the log file")
        assert log.read_text().rstrip().endswith(
            '%s:2: bundle "bad": args: %s: missing from the store' % (spec, gone))
    finally:
        run(["fusermount3", "-u", str(mnt)])


def test_errors_before_detaching_reach_stderr(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    p = run([BUNDLEFS, "--log", str(tmp_path / "no" / "such" / "dir" / "log"), str(tmp_path), spec],
            check=False, timeout=20)
    assert p.returncode == 1
    assert b"--log" in p.stderr and b"No such file or directory" in p.stderr
    assert not is_mounted(tmp_path)


def test_systemd_unit_is_valid(tmp_path):
    # The unit CMake configures (contrib/bundlefs@.service.in), pointed at
    # the built binary, passes systemd's own checks. (Its man pages are
    # only there once installed.)
    from conftest import BUILD
    unit = open(os.path.join(BUILD, "bundlefs@.service")).read()
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # Successors announce themselves; a dead daemon does not end the service.
    assert "NotifyAccess=all" in unit and "ExitType=cgroup" in unit
    exec_start = next(l for l in unit.splitlines() if l.startswith("ExecStart="))
    binary = exec_start.split("=", 1)[1].split()[0]
    unit = "\n".join(l for l in unit.replace(binary, BUNDLEFS).splitlines()
                     if not l.startswith("Documentation="))
    (tmp_path / "mnt").mkdir()
    instance = tmp_path / ("bundlefs@%s.service" % str(tmp_path / "mnt").strip("/").replace("/", "-"))
    instance.write_text(unit)
    p = run(["systemd-analyze", "verify", str(instance)], check=False)
    assert p.returncode == 0 and not p.stderr, p.stderr
