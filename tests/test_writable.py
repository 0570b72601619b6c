# Writable roots: a readonly = false bundle gets an overlayfs whose lower
# layer is the FUSE rootfs and whose upper layer lives under --state-dir.
# Containers (runc and crun) write, create, rename and delete anywhere;
# the next run and a run after a remount see it; `bundlectl reset` clears
# it; the store is never written (nix-store --verify-path).
import os
import signal
import subprocess

import pytest

from conftest import STORE, bundlectl, is_mounted, run, wait_for, write_spec


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


def overlays_under(mountpoint):
    return [l for l in open("/proc/self/mountinfo")
            if " - overlay " in l and l.split()[4].startswith(mountpoint + "/")]


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


def test_reset_discards_the_writes(tmp_path, mount, runc, nix, tiny):
    state = tmp_path / "state"
    w = spec_for(tmp_path, nix, tiny, "cat /hello 2>/dev/null || echo none; echo x > /hello")
    m = mount(w, "--state-dir", str(state))
    assert out(runc.run(m.path("w"))) == "none\n"
    assert out(runc.run(m.path("w"))) == "x\n"
    p = bundlectl("reset", m.mountpoint, "w")
    assert b"writes discarded" in p.stdout
    assert out(runc.run(m.path("w"))) == "none\n"
    # A bundle the spec does not have (any more): its state goes too.
    gone = next(state.glob("*")) / "gone" / "upper"
    gone.mkdir(parents=True)
    bundlectl("reset", m.mountpoint, "gone")
    assert not gone.exists()
    p = bundlectl("reset", m.mountpoint, "..", check=False)
    assert p.returncode == 1 and b"not a bundle name" in p.stderr


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
    assert not (tmp_path / "state").exists()
    assert not overlays_under(m.mountpoint)


def test_writable_roots_survive_a_failover_and_go_with_the_mount(tmp_path, nix, tiny, runc):
    from test_failover import Mount
    state = tmp_path / "state"
    w = spec_for(tmp_path, nix, tiny, "cat /n 2>/dev/null || echo 0; echo 1 > /n")
    m = Mount(tmp_path / "mnt", w, ("--state-dir", str(state)))
    try:
        assert out(runc.run(m.path("w"))) == "0\n"
        m.kill_daemon()
        assert out(runc.run(m.path("w"))) == "1\n"
        assert len(overlays_under(m.mountpoint)) == 1
        pid, _ = m.pids()
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not is_mounted(m.mountpoint), "the mount stays")
        assert not [l for l in open("/proc/self/mountinfo") if m.mountpoint + "/" in l]
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
    assert len(overlays_under(m.mountpoint)) == 1, overlays_under(m.mountpoint)


def test_a_mounted_writable_root_needs_a_lazy_unmount(tmp_path, nix, tiny, runc):
    # An overlay below the mount pins it: umount says busy and changes
    # nothing; SIGTERM (a lazy unmount) takes both down, and the daemon
    # exits 0 once nothing uses them.
    from conftest import Mount
    w = spec_for(tmp_path, nix, tiny, "echo x > /f")
    m = Mount(tmp_path / "mnt", w)
    try:
        out(runc.run(m.path("w")))
        p = run(["umount", m.mountpoint], check=False)
        assert p.returncode != 0 and b"busy" in p.stderr
        assert is_mounted(m.mountpoint) and len(overlays_under(m.mountpoint)) == 1
        m.proc.send_signal(signal.SIGTERM)
        m.exited()
        assert not is_mounted(m.mountpoint) and not overlays_under(m.mountpoint)
    finally:
        m.cleanup()
