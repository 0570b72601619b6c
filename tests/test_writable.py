# Writable roots: a readonly = false bundle gets an overlayfs whose lower
# layer is the FUSE rootfs and whose upper layer lives under --state-dir,
# mounted outside the FUSE mount (in --run-dir), so that a plain umount
# works. Containers (runc and crun) write, create, rename and delete
# anywhere; the next run and a run after a remount see it; `bundlectl
# reset` starts afresh without touching a running container; `bundlectl
# prune` removes what no bundle uses; the store is never written
# (nix-store --verify-path).
import os
import signal
import subprocess

import pytest

from conftest import NATIVE, STORE, bundlectl, is_mounted, run, wait_for, write_spec


def out(p):
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def busybox(nix, tiny):
    return [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]


# (The container's root has no capabilities: it makes the store's
# read-only modes writable first, as the owner of the files may.)
WRITE = ("echo one > /hello; mkdir -p /a/b; echo deep > /a/b/f; mv /a /moved; "
         "chmod u+w {tiny}/bin {tiny}/bin/entrypoint {store}; "
         "echo more >> {tiny}/bin/entrypoint; mv {tiny}/bin/entrypoint {tiny}/bin/renamed; "
         "echo new > {store}/made-in-a-container; ls /")
READ = ("cat /hello /moved/b/f; tail -n 1 {tiny}/bin/renamed; "
        "ls {tiny}/bin/entrypoint {store}/made-in-a-container 2>&1; ls /")


def spec_for(tmp_path, nix, tiny, script, extra=""):
    bb = busybox(nix, tiny)
    return write_spec(tmp_path, "[w]\nargs = %s/bin/sh -c '%s'\nreadonly = false\n%s"
                      % (bb, script.format(tiny=tiny, store=STORE), extra),
                      name="spec-%d.conf" % abs(hash(script)))


def state_of(m):
    return m.proc.args[m.proc.args.index("--state-dir") + 1]


def overlays_of(m):
    """The overlays (in this mount namespace) whose upper layer is in m's
    state directory."""
    upper = "upperdir=%s/" % state_of(m)
    return [l for l in open("/proc/self/mountinfo") if " - overlay " in l and upper in l]


def escape(path):
    """A mount point as the state and runtime directories name it."""
    ok = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._")
    return "".join("-" if c == "/" else c if c in ok else "%%%02X" % ord(c) for c in path[1:])


def area_of(m):
    return "/run/bundlefs/" + escape(m.mountpoint)


def waiting_script(tmp_path, body_before, body_after):
    """A container script that runs body_before, says so in /ctl/started,
    waits for the test to create /ctl/go, then runs body_after; /ctl is a
    directory of the test's, bound into the container."""
    ctl = tmp_path / "ctl"
    ctl.mkdir(exist_ok=True)
    script = ("%s; touch /ctl/started; while [ ! -e /ctl/go ]; do sleep 0.05; done; %s"
              % (body_before, body_after))
    return ctl, script, "mount = /ctl bind %s rbind\n" % ctl


def verify_store(nix, paths):
    for p in paths:
        run(["nix-store", "--verify-path", p])


def test_a_container_writes_and_the_next_run_and_a_remount_see_it(tmp_path, mount, runtime, nix,
                                                                    tiny):
    state = tmp_path / "state"
    entry = open(tiny + "/bin/entrypoint", "rb").read()
    w = spec_for(tmp_path, nix, tiny, WRITE)
    m = mount(w, "--state-dir", str(state))
    assert out(runtime.run(m.path("w"))).split() == [
        "dev", "hello", "moved", "nix", "proc", "sys"]
    # Copy-up only: the store is as it was, and the upper layer holds what
    # was written, nothing else of the closure.
    assert open(tiny + "/bin/entrypoint", "rb").read() == entry
    assert not os.path.exists(STORE + "/made-in-a-container")
    verify_store(nix, nix.closure(tiny))
    upper = next(state.glob("*/w/upper"))
    # Nothing below the mount: the writable root is in the runtime
    # directory, and the bundle's name leads there.
    assert not [l for l in open("/proc/self/mountinfo") if l.split()[4].startswith(m.mountpoint + "/")]
    assert os.path.realpath(m.path("w")).startswith(area_of(m) + "/")
    written = sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))
    assert "hello" in written and "moved/b/f" in written
    assert not any(p.endswith("busybox") for p in written)
    # The next run, through the same spec but another command, sees it.
    r = spec_for(tmp_path, nix, tiny, READ)
    assert m.stop() == 0
    m2 = mount(r, "--state-dir", str(state))
    lines = out(runtime.run(m2.path("w"))).splitlines()
    assert lines[:3] == ["one", "deep", "more"]
    assert "No such file or directory" in lines[3]  # renamed away
    assert lines[4] == "%s/made-in-a-container" % STORE
    assert lines[5:] == ["dev", "hello", "moved", "nix", "proc", "sys"]
    assert open(tiny + "/bin/entrypoint", "rb").read() == entry
    verify_store(nix, nix.closure(tiny))


def test_reset_gives_new_containers_a_clean_root(tmp_path, mount, runc, nix, tiny):
    state = tmp_path / "state"
    w = spec_for(tmp_path, nix, tiny, "cat /hello 2>/dev/null || echo none; echo x > /hello")
    m = mount(w, "--state-dir", str(state))
    assert out(runc.run(m.path("w"))) == "none\n"
    assert out(runc.run(m.path("w"))) == "x\n"
    p = bundlectl("reset", m.mountpoint, "w")
    assert b"writes discarded" in p.stdout
    assert out(runc.run(m.path("w"))) == "none\n"
    # The old generation went at once (nothing used it); the new one took
    # its place.
    bundle_dir = next(state.glob("*/w"))
    assert sorted(os.listdir(bundle_dir)) == ["upper.1", "work.1"]


def test_reset_leaves_a_running_container_its_files(tmp_path, mount, runc, nix, tiny):
    # The first container writes /state and waits; a reset comes; a new
    # container sees a clean root; the first one still reads its /state,
    # and its generation is removed once it has exited.
    ctl, script, bind = waiting_script(
        tmp_path, "if [ -e /ctl/hold ]; then echo mine > /state", "cat /state; fi; "
        "cat /state 2>/dev/null || echo clean")
    (ctl / "hold").touch()
    state = tmp_path / "state"
    m = mount(spec_for(tmp_path, nix, tiny, script, bind), "--state-dir", str(state))
    first = runc.start(m.path("w"))
    wait_for(lambda: (ctl / "started").exists() or first.poll() is not None, "no start", 30)
    (ctl / "hold").unlink()
    bundle_dir = next(state.glob("*/w"))
    assert (bundle_dir / "upper" / "state").exists()
    p = bundlectl("reset", m.mountpoint, "w")
    assert b"writes discarded" in p.stdout
    assert out(runc.run(m.path("w"))) == "clean\n"
    (ctl / "go").touch()
    o, e = first.communicate(timeout=30)
    assert first.returncode == 0, e
    assert o.decode().splitlines() == ["mine", "mine"]
    # Generation 0 goes once no container uses it (looked at every 5 s).
    wait_for(lambda: sorted(os.listdir(bundle_dir)) == ["upper.1", "work.1"],
             "the old generation stays: %s" % sorted(os.listdir(bundle_dir)), 20)


def test_reset_refuses_unknown_and_read_only_bundles(tmp_path, mount, tiny, nix):
    bb = busybox(nix, tiny)
    spec = write_spec(tmp_path, "[ro]\nargs = %s/bin/sh\nreadonly = true\n[w]\nargs = %s/bin/sh\n"
                      % (bb, bb))
    m = mount(spec)
    p = bundlectl("reset", m.mountpoint, "nosuch", check=False)
    assert p.returncode == 2, p
    assert b'has no bundle "nosuch"' in p.stderr and not p.stdout
    p = bundlectl("reset", m.mountpoint, "ro", check=False)
    assert p.returncode == 2, p
    assert b'bundle "ro" is read-only' in p.stderr and not p.stdout
    p = bundlectl("reset", m.mountpoint, "..", check=False)
    assert p.returncode == 1 and b"not a bundle name" in p.stderr
    # A writable bundle nothing has written to yet: nothing to do, fine.
    assert bundlectl("reset", m.mountpoint, "w").returncode == 0


def test_prune_removes_only_state_nothing_uses(tmp_path, mount, runc, nix, tiny):
    # w1 stays in the spec; w2 is removed from it while a container runs
    # on it; "gone" is what an earlier spec left.
    ctl, script, bind = waiting_script(tmp_path, "echo 2 > /two", "true")
    state = tmp_path / "state"
    bb = busybox(nix, tiny)
    spec = tmp_path / "spec.conf"
    w1 = "[w1]\nargs = %s/bin/sh -c 'echo 1 > /one'\n" % bb
    spec.write_text(w1 + "[w2]\nargs = %s/bin/sh -c '%s'\n%s" % (bb, script, bind))
    m = mount(str(spec), "--state-dir", str(state))
    out(runc.run(m.path("w1")))
    second = runc.start(m.path("w2"))
    wait_for(lambda: (ctl / "started").exists() or second.poll() is not None, "no start", 30)
    top = state / escape(m.mountpoint)
    (top / "gone" / "upper").mkdir(parents=True)
    (top / "gone" / "upper" / "f").write_text("old")
    (top / "gone" / "work").mkdir()
    spec.write_text(w1)
    bundlectl("reload", m.mountpoint)

    p = bundlectl("prune", "--dry-run", m.mountpoint)
    text = p.stdout.decode()
    assert "would remove" in text and "%s/gone/upper" % top in text, text
    assert "%s/w2/upper (in use)" % top in text, text
    assert "%s/w1/upper (the current one)" % top in text, text
    assert (top / "gone" / "upper" / "f").exists()
    p = bundlectl("prune", m.mountpoint)
    assert "removed" in p.stdout.decode()
    assert not (top / "gone").exists()
    assert (top / "w1" / "upper" / "one").exists() and (top / "w2" / "upper" / "two").exists()
    (ctl / "go").touch()
    assert second.wait(30) == 0
    bundlectl("prune", m.mountpoint)
    assert not (top / "w2").exists() and (top / "w1" / "upper" / "one").exists()
    # Without a daemon: every mount point's state in the directory that
    # no mount serves goes (unless a container uses it).
    assert m.stop() == 0
    p = bundlectl("prune", "--dry-run", "--state-dir", str(state))
    assert "would remove" in p.stdout.decode() and (top / "w1").exists()
    bundlectl("prune", "--state-dir", str(state))
    assert os.listdir(state) == []


def test_readonly_bundles_stay_read_only(tmp_path, mount, runc, tiny):
    spec = write_spec(
        tmp_path,
        "[t]\nargs = %s/bin/sh -c 'touch /nix/store/x; mkdir /newdir; echo hi > %s/bin/entrypoint;"
        " echo done'\nreadonly = true\n" % (tiny, tiny),
    )
    m = mount(spec, "--state-dir", str(tmp_path / "state"))
    p = runc.run(m.path("t"))
    assert out(p) == "done\n"
    err = p.stderr.decode()
    assert err.count("Read-only file system") == 3, err
    assert not os.path.exists(STORE + "/x")
    # (Images of closures may be kept there: no writable root's state.)
    assert not (tmp_path / "state" / escape(m.mountpoint)).exists()
    assert not overlays_of(m)


def test_writable_roots_survive_a_failover_and_go_with_the_mount(tmp_path, nix, tiny, runc):
    from test_failover import Mount
    state = tmp_path / "state"
    w = spec_for(tmp_path, nix, tiny, "cat /n 2>/dev/null || echo 0; echo 1 > /n")
    m = Mount(tmp_path / "mnt", w, ("--state-dir", str(state)))
    try:
        assert out(runc.run(m.path("w"))) == "0\n"
        m.kill_daemon()
        assert out(runc.run(m.path("w"))) == "1\n"
        assert len(overlays_of(m)) == 1
        pid, _ = m.pids()
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not is_mounted(m.mountpoint), "the mount stays")
        wait_for(lambda: not overlays_of(m) and not os.path.exists(area_of(m)),
                 "the writable root stays")
    finally:
        m.cleanup()


def test_a_reload_that_changes_a_writable_bundle_keeps_its_writes(tmp_path, mount, runc, nix,
                                                                tiny):
    state = tmp_path / "state"
    spec = tmp_path / "spec.conf"
    bb = busybox(nix, tiny)
    spec.write_text("[w]\nargs = %s/bin/sh -c 'echo kept > /f'\n" % bb)
    m = mount(str(spec), "--state-dir", str(state))
    out(runc.run(m.path("w")))
    spec.write_text("[w]\nargs = %s/bin/sh -c 'cat /f'\n" % bb)
    bundlectl("reload", m.mountpoint)
    assert out(runc.run(m.path("w"))) == "kept\n"
    # The old version's writable root left its mount point: one overlay.
    assert len(overlays_of(m)) == 1, overlays_of(m)


@pytest.mark.parametrize("how", ["umount", "fusermount3"])
def test_plain_unmount_takes_the_writable_roots_with_it(tmp_path, nix, tiny, runc, how):
    # A writable bundle followed (stat) and run: nothing is mounted below
    # the mount, so a plain unmount works; the daemon then detaches the
    # writable roots and exits 0.
    from conftest import Mount
    w = spec_for(tmp_path, nix, tiny, "echo x > /f")
    m = Mount(tmp_path / "mnt", w)
    try:
        os.stat(m.path("w"))
        assert len(overlays_of(m)) == 1
        out(runc.run(m.path("w")))
        run([how, "-u", m.mountpoint] if how == "fusermount3" else [how, m.mountpoint])
        m.exited()
        assert not is_mounted(m.mountpoint) and not overlays_of(m)
        assert not os.path.exists(area_of(m))
        assert "x" in open(next(__import__("glob").iglob(state_of(m) + "/*/w/upper/f"))).read()
    finally:
        m.cleanup()


def test_unmount_while_a_container_runs_loses_nothing(tmp_path, nix, tiny, runc):
    # The mount goes while a container runs on its writable root: the
    # container keeps its root, writes after the unmount, and the next
    # mount shows what it wrote.
    from conftest import Mount
    ctl, script, bind = waiting_script(tmp_path, "echo before > /a",
                                       "echo after > /b; cat /a /b; ls /nix/store | wc -l")
    state = str(tmp_path / "state")
    w = spec_for(tmp_path, nix, tiny, script, bind)
    m = Mount(tmp_path / "mnt", w, ("--state-dir", state))
    try:
        c = runc.start(m.path("w"))
        wait_for(lambda: (ctl / "started").exists() or c.poll() is not None, "no start", 30)
        run(["umount", m.mountpoint])
        assert not is_mounted(m.mountpoint)
        wait_for(lambda: not overlays_of(m), "the writable root stays in this namespace")
        if NATIVE:
            # (its root is the kernel's alone: the daemon has nothing left
            # to serve, and leaves)
            m.exited()
        else:
            assert m.proc.poll() is None  # serving the container still
        (ctl / "go").touch()
        o, e = c.communicate(timeout=30)
        assert c.returncode == 0, e
        assert o.decode().split() == ["before", "after", str(len(nix.closure(busybox(nix, tiny))))]
        m.exited()
    finally:
        m.cleanup()
    r = spec_for(tmp_path, nix, tiny, "cat /a /b")
    m2 = Mount(tmp_path / "mnt", r, ("--state-dir", state))
    try:
        assert out(runc.run(m2.path("w"))).split() == ["before", "after"]
    finally:
        m2.stop()
        m2.cleanup()


def test_mount_command_and_umount_with_a_writable_root(tmp_path, nix, tiny):
    # mount(8) with a writable bundle used, then umount(8): as an fstab
    # or systemd .mount unit does it. (mount.fuse3 finds bundlefs on the
    # system's PATH: in a namespace of its own the test puts it there.)
    from conftest import BUNDLEFS
    w = spec_for(tmp_path, nix, tiny, "echo x > /f")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(BUNDLEFS, bindir / "bundlefs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    state = tmp_path / "state"
    script = """
set -e
mount --bind {bindir} /usr/local/bin
mount -t fuse.bundlefs -o gcroots=none,state-dir={state} {spec} {mnt}
stat {mnt}/w/rootfs/dev > /dev/null
grep -c " - overlay .*upperdir={state}/" /proc/self/mountinfo
umount {mnt}
for i in $(seq 100); do grep -q "upperdir={state}/" /proc/self/mountinfo || break; sleep 0.05; done
grep -c " - overlay .*upperdir={state}/" /proc/self/mountinfo || true
""".format(bindir=bindir, spec=w, mnt=mnt, state=state)
    p = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            check=False, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == ["1", "0"]
    assert not is_mounted(mnt)
