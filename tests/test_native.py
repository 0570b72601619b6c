# Kernel-native roots (--data native, the default): a bundle's root is an
# overlay of its closure's metadata image (EROFS, libcomposefs) over the
# store as a data-only layer, so that the kernel serves it alone. What it
# shows must equal the copy buildContainer makes, byte for byte; what it
# cannot be falls back to the FUSE tree with the reason in the status; the
# image is cached per closure; what the store does under a running root
# (a file deleted, optimised) is what docs/design.md says.
import errno
import os
import stat
import subprocess
import time

import pytest

from conftest import BUNDLEFS, STORE, Mount, bundlectl, run, write_spec
from test_hostile import FakeStore
from test_mount import dump

BUILT_IN = b"native roots built in" in subprocess.run([BUNDLEFS, "--version"],
                                                      stdout=subprocess.PIPE).stdout
needs_native = pytest.mark.skipif(not BUILT_IN, reason="this build has no libcomposefs")


def native(m, name):
    """The bundle's data path as the status says it, once decided."""
    m.native = True
    m.settle(name)
    return [b for b in m.status()["bundles"] if b["name"] == name][0]["data"]


def native_mount(tmp_path, spec, *args, name="mnt"):
    return Mount(tmp_path / name, spec, ("--data", "native") + args)


def roots_in_area(m):
    with open("/proc/self/mountinfo") as f:
        return [l for l in f if " - overlay " in l and "/run/bundlefs/" in l.split()[4]
                and m.mountpoint.replace("/", "-")[1:] in l.split()[4].replace("%2D", "-")]


@needs_native
@pytest.mark.parametrize("attr", ["app", "realistic"])
def test_the_root_equals_the_copy(tmp_path, nix, attr):
    top = nix.build(attr)
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/x\nreadonly = true\nmount = /data bind /srv\n"
                      "cwd = /srv/app/work\n" % top)
    copy = tmp_path / "copy"
    bundlectl("materialize", spec, "b", str(copy))
    with native_mount(tmp_path, spec) as m:
        os.stat(m.path("b"))
        assert native(m, "b") == {"path": "native", "why": None}
        rootfs = m.path("b", "rootfs")
        assert os.path.realpath(rootfs).startswith("/run/bundlefs/")
        served, copied = dump(rootfs), dump(str(copy / "rootfs"))
        assert len(served) > (5000 if attr == "realistic" else 50)
        assert served.keys() == copied.keys()
        assert served == copied
        with open(m.path("b", "config.json"), "rb") as f:
            assert f.read() == (copy / "config.json").read_bytes()
        # Nothing of it reaches the daemon: no node below the root's name.
        before = m.status()["nodes"]
        dump(rootfs)
        assert m.status()["nodes"] == before


@needs_native
def test_a_hostile_tree_shows_what_the_fuse_tree_shows(tmp_path, nix):
    # Any name bytes; setuid and setgid dropped; no FIFO, device or socket;
    # symlinks served as symlinks, never followed, also out of the store.
    bb = [p for p in nix.closure(nix.build("tiny")) if p.endswith("-busybox")][0]
    fake = FakeStore(tmp_path, bb + "/bin/busybox", "openat2")
    p = fake.mkpath("hostile")
    d = fake.real / p
    odd = "a\nb \\ c:d,e=f\t\x01\xff".encode("utf-8", "surrogateescape")
    with open(os.path.join(bytes(d), odd), "wb") as f:
        f.write(b"odd")
    (d / "suid").write_text("x")
    os.chmod(d / "suid", 0o6755)
    os.mkfifo(d / "fifo")
    os.mknod(d / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.symlink("/etc/shadow", d / "out")
    os.symlink("../" + fake.bb, d / "up")
    (d / "empty").write_bytes(b"")
    spec = fake.spec({"b": [p]})
    served = {}
    for data in ("fuse", "native"):
        m = Mount(tmp_path / ("mnt-" + data), spec, fake.opts() + ("--data", data))
        try:
            if data == "native":
                assert native(m, "b")["path"] == "native"
            top = m.path("b", "rootfs") + STORE + "/" + p
            names = sorted(os.listdir(os.fsencode(top)))
            served[data] = (names, {n: os.lstat(os.path.join(os.fsencode(top), n)).st_mode
                                    for n in names})
            assert open(os.path.join(os.fsencode(top), odd), "rb").read() == b"odd"
            assert os.readlink(top + "/out") == "/etc/shadow"
            assert os.readlink(top + "/up") == "../" + fake.bb
            assert open(top + "/empty", "rb").read() == b""
        finally:
            m.stop()
            m.cleanup()
    assert served["native"] == served["fuse"]
    names, modes = served["native"]
    assert b"fifo" not in names and b"dev" not in names
    assert stat.S_IMODE(modes[b"suid"]) == 0o755


@needs_native
def test_bundles_sharing_a_closure_share_one_image_and_a_restart_reuses_it(tmp_path, nix, app):
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\nreadonly = true\n"
                      "[b]\nargs = %s/bin/app --other\nreadonly = true\n" % (app, app))
    state = tmp_path / "state"
    with native_mount(tmp_path, spec, "--state-dir", str(state)) as m:
        for name in "ab":
            os.stat(m.path(name))
            assert native(m, name)["path"] == "native"
        images = os.listdir(state / "@images")
        assert len(images) == 1 and images[0].endswith(".erofs")
        assert m.stderr().count("closure image built") == 1
    with native_mount(tmp_path, spec, "--state-dir", str(state), name="mnt2") as m:
        os.stat(m.path("a"))
        assert native(m, "a")["path"] == "native"
        assert "closure image built" not in m.stderr()
    # A damaged image in the cache is made again.
    image = state / "@images" / images[0]
    image.write_bytes(image.read_bytes()[:4096])
    with native_mount(tmp_path, spec, "--state-dir", str(state), name="mnt3") as m:
        os.stat(m.path("a"))
        assert native(m, "a")["path"] == "native"
        assert "was damaged: building it again" in m.stderr()
        assert "closure image built" in m.stderr()
        assert sorted(os.listdir(m.path("a", "rootfs") + STORE)) == \
            sorted(os.path.basename(p) for p in nix.closure(app))
    # Prune removes an image no root is made from any more.
    p = bundlectl("prune", "--state-dir", str(state))
    assert "removed" in p.stdout.decode() and not (state / "@images").exists()


@needs_native
def test_containers_started_before_keep_the_fuse_tree(tmp_path, nix, tiny, runc):
    # The first use of a read-only bundle is served by the FUSE tree while
    # its image is made; the name then points at the kernel-native root for
    # the containers started from then on.
    bb = [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/sh -c 'cat /proc/self/mountinfo'\n"
                      "readonly = true\n" % bb)
    with native_mount(tmp_path, spec) as m:
        first = os.readlink(os.path.join(m.mountpoint, "b"))
        assert first.startswith(".bundlefs/")
        assert native(m, "b")["path"] == "native"
        assert os.readlink(os.path.join(m.mountpoint, "b")).startswith("/run/bundlefs/")
        out = runc.run(m.path("b"))
        assert out.returncode == 0, out.stderr
        root = [l for l in out.stdout.decode().splitlines() if l.split()[4] == "/"][0]
        assert " - overlay " in root, root


def test_what_cannot_be_native_is_served_by_the_fuse_tree(tmp_path, nix, app, tiny):
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\nreadonly = true\ndata = fuse\n"
                      "[b]\nargs = %s/bin/sh\nreadonly = true\ndata = bind\n"
                      "[c]\nargs = %s/bin/app\nreadonly = true\n" % (app, tiny, app))
    with native_mount(tmp_path, spec) as m:
        for name in "abc":
            os.stat(m.path(name))
        data = {b["name"]: b["data"] for b in m.status()["bundles"]}
        assert data["a"] == {"path": "fuse", "why": "data = fuse"}
        assert data["b"]["path"] == "bind"
        if BUILT_IN:
            assert data["c"] == {"path": "native", "why": None}
        else:
            assert data["c"]["path"] in (None, "fuse")
            assert "built without libcomposefs" in m.stderr()
        assert os.readlink(os.path.join(m.mountpoint, "a")).startswith(".bundlefs/")
    with Mount(tmp_path / "mnt2", spec, ("--data", "fuse")) as m:
        os.stat(m.path("c"))
        os.listdir(m.path("c", "rootfs"))
        c = [b for b in m.status()["bundles"] if b["name"] == "c"][0]
        assert c["data"] in ({"path": None, "why": None},
                             {"path": "fuse", "why": "--data fuse"})
        assert os.readlink(os.path.join(m.mountpoint, "c")).startswith(".bundlefs/")


@needs_native
def test_an_image_that_cannot_be_made_falls_back(tmp_path, nix, app):
    # The state directory (where images are kept) is a file: no image.
    state = tmp_path / "state"
    state.write_text("not a directory")
    spec = write_spec(tmp_path, "[c]\nargs = %s/bin/app\nreadonly = true\n" % app)
    with native_mount(tmp_path, spec, "--state-dir", str(state)) as m:
        os.stat(m.path("c"))
        d = native(m, "c")
        assert d["path"] == "fuse" and "metadata image failed" in d["why"], d
        assert os.listdir(m.path("c", "rootfs") + STORE)
        assert "no kernel-native root" in m.stderr()


@needs_native
def test_the_store_changing_under_a_running_root(tmp_path, nix):
    # Deleted store files give ENOENT when opened (the image still lists
    # them); a file replaced by a hard link to identical bytes (what
    # `nix-store --optimise` does) reads the same.
    bb = [p for p in nix.closure(nix.build("tiny")) if p.endswith("-busybox")][0]
    fake = FakeStore(tmp_path, bb + "/bin/busybox", "openat2")
    a, b = fake.mkpath("a"), fake.mkpath("b")
    (fake.real / a / "f").write_text("content of f\n")
    (fake.real / a / "g").write_text("content of g\n")
    (fake.real / b / "h").write_text("content of h\n")
    links = fake.real / ".links"
    links.mkdir()
    with native_mount(tmp_path, fake.spec({"x": [a, b]}), *fake.opts()) as m:
        assert native(m, "x")["path"] == "native"
        top = m.path("x", "rootfs") + STORE
        # optimise: g becomes a hard link to an identical file
        os.link(fake.real / a / "g", links / "g")
        os.rename(links / "g", fake.real / a / "g.new")
        os.rename(fake.real / a / "g.new", fake.real / a / "g")
        assert open("%s/%s/g" % (top, a)).read() == "content of g\n"
        # gc: b is deleted
        run(["rm", "-rf", str(fake.real / b)])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        assert os.listdir("%s/%s" % (top, b)) == ["h"]
        with pytest.raises(OSError) as e:
            open("%s/%s/h" % (top, b)).read()
        assert e.value.errno == errno.ENOENT
        assert open("%s/%s/f" % (top, a)).read() == "content of f\n"


@needs_native
def test_unmounted_while_an_image_is_built(tmp_path, nix):
    # The mount goes while a read-only bundle's image is being built: no
    # root is mounted for it afterwards, nothing is left in the runtime
    # directory, and no successor is started for the mount that went
    # (mount ids and device numbers are reused: an EROFS image may get
    # both).
    real = nix.build("realistic")
    spec = write_spec(tmp_path, "[r]\nargs = %s/bin/python3\nreadonly = true\n" % real)
    m = native_mount(tmp_path, spec)
    try:
        daemon, supervisor = m.pids()
        # (not m.path, which waits for the root)
        os.listdir(os.path.join(m.mountpoint, "r", "rootfs") + STORE)
        run(["fusermount3", "-u", "-z", m.mountpoint])
        m.exited(30)
        time.sleep(2)
        assert not os.path.exists("/proc/%d" % supervisor) or \
            open("/proc/%d/stat" % supervisor).read().split(") ")[1][0] == "Z"
        from test_writable import area_of
        with open("/proc/self/mountinfo") as f:
            left = [l for l in f if area_of(m) in l]
        assert not left and not os.path.exists(area_of(m)), left
        assert "starting another" not in m.stderr()
    finally:
        m.cleanup()
