# FUSE passthrough: where the build and the kernel have it, store files are
# read by the kernel itself (no READ reaches the daemon), one backing file
# per store file is registered and reused, files bundlefs makes up are still
# served by the daemon, and a successor takes the backing files over.
import errno
import hashlib
import os
import subprocess

import pytest

from conftest import BUNDLEFS, STORE, closure_files, Mount, bundlectl, run, stop_mount, wait_for, write_spec

VERSION = run([BUNDLEFS, "--version"]).stdout.decode()
BUILT = "passthrough built in" in VERSION


def largest_file(paths):
    return max(closure_files(paths), key=os.path.getsize)


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle(st, name):
    return next(b for b in st["bundles"] if b["name"] == name)


def test_version_says_whether_passthrough_is_built_in():
    assert VERSION.startswith("bundlefs ")
    assert ("passthrough built in" in VERSION) != ("passthrough not built in" in VERSION)
    # tools/test says which the build must be.
    expected = os.environ.get("BUNDLEFS_PASSTHROUGH")
    if expected:
        assert BUILT == (expected == "yes"), VERSION


@pytest.fixture
def two(tmp_path, mount, app):
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\nreadonly = true\n"
                      "[b]\nargs = %s/bin/app\nreadonly = true\n" % (app, app))
    return spec


def test_store_files_are_read_by_the_kernel(two, mount, nix, app):
    m = mount(two)
    big = largest_file(nix.closure(app))
    via = m.path("a", "rootfs") + big
    assert digest(via) == digest(big)
    st = m.status()
    assert st["passthrough"]["on"] == BUILT
    if not BUILT:
        assert bundle(st, "a")["served"] == os.path.getsize(big)
        return
    # Not one byte through the daemon; one backing file.
    assert bundle(st, "a")["served"] == 0
    pt = st["passthrough"]
    assert pt["registered"] == 1 and pt["backing_files"] == 1 and pt["failed"] == 0
    # Opened again, and through another bundle: the same backing file.
    with open(via, "rb") as f:
        f.read(4096)
    with open(m.path("b", "rootfs") + big, "rb") as f:
        assert f.read(1 << 16) == open(big, "rb").read(1 << 16)
    st = m.status()
    assert st["passthrough"]["registered"] == 1
    assert st["passthrough"]["opens"] == 3
    human = bundlectl("status", m.mountpoint).stdout.decode()
    assert "passthrough: 1 store files registered, 3 opens passed through\n" in human
    assert bundle(st, "b")["served"] == 0
    # Mapped and executed through the mount.
    bb = next(p for p in nix.closure(app) if os.path.exists(p + "/bin/busybox"))
    out = run([m.path("a", "rootfs") + bb + "/bin/busybox", "echo", "passed"])
    assert out.stdout == b"passed\n"
    assert bundle(m.status(), "a")["served"] == 0


def test_made_up_files_are_served_by_the_daemon(two, mount):
    m = mount(two)
    with open(m.path("a", "config.json"), "rb") as f:
        data = f.read()
    assert data.startswith(b"{")
    st = m.status()
    assert bundle(st, "a")["served"] == len(data)
    if BUILT:
        assert st["passthrough"]["registered"] == 0


def test_no_passthrough_reads_through_the_daemon(two, mount, nix, app):
    m = mount(two, "--no-passthrough")
    big = largest_file(nix.closure(app))
    assert digest(m.path("a", "rootfs") + big) == digest(big)
    st = m.status()
    assert st["passthrough"] == {"on": False, "backing_files": None, "opens": None,
                                 "registered": None, "failed": None}
    human = bundlectl("status", m.mountpoint).stdout.decode()
    assert "passthrough: off (store files are read through the daemon)\n" in human
    assert bundle(st, "a")["served"] == os.path.getsize(big)


@pytest.mark.skipif(not BUILT, reason="this build has no passthrough")
def test_a_successor_takes_the_backing_files_over(tmp_path, two, nix, app):
    m = Mount(tmp_path / "mnt", two)
    try:
        big = largest_file(nix.closure(app))
        with open(big, "rb") as f:
            want = f.read()
        held = open(m.path("a", "rootfs") + big, "rb")
        assert held.read(4096) == want[:4096]
        assert m.status()["passthrough"]["backing_files"] == 1
        m.kill_daemon()
        # Taken over, not registered again: the file open across the
        # kill reads on, and opens of it (which the kernel refuses with
        # another id while it is open) work.
        assert m.status()["passthrough"]["backing_files"] == 1
        for name in ("a", "b"):
            with open(m.path(name, "rootfs") + big, "rb") as f:
                assert f.read() == want
        assert held.read() == want[4096:]
        held.close()
        st = m.status()
        assert st["passthrough"]["registered"] == 0 and st["passthrough"]["opens"] == 2
        assert bundle(st, "a")["served"] == bundle(st, "b")["served"] == 0
        stop_mount(m)
    finally:
        m.cleanup()


@pytest.mark.skipif(not BUILT, reason="this build has no passthrough")
def test_every_file_of_the_closure_reads_the_same(tmp_path, mount, nix):
    # Every file of the realistic closure, read through the mount, equals
    # the store's; each store file is one backing file.
    real = nix.build("realistic")
    spec = write_spec(tmp_path, "[r]\nargs = %s/bin/bash\nreadonly = true\n" % real)
    m = mount(spec)
    n = 0
    inodes = set()
    for p in closure_files(nix.closure(real)):
        with open(m.path("r", "rootfs") + p, "rb") as f, open(p, "rb") as g:
            assert f.read() == g.read(), p
        st = os.stat(p)
        inodes.add((st.st_dev, st.st_ino))
        n += 1
    st = m.status()
    assert bundle(st, "r")["served"] == 0
    assert st["passthrough"]["registered"] == len(inodes)
    assert n >= len(inodes) > 1000


@pytest.mark.skipif(not BUILT, reason="this build has no passthrough")
def test_ids_of_open_files_are_kept_and_few_idle_ones(tmp_path, mount, nix):
    # With --passthrough-files 4: 6 files held open keep their ids (the
    # kernel refuses another id for an open inode), once closed only 4
    # stay registered, and the let-go ones are registered again when
    # opened; every read is right throughout, and none goes through the
    # daemon.
    real = nix.build("realistic")
    spec = write_spec(tmp_path, "[r]\nargs = %s/bin/bash\nreadonly = true\n" % real)
    m = mount(spec, "--passthrough-files", "4")
    files, seen = [], set()
    for p in closure_files(sorted(nix.closure(real))):
        st = os.stat(p)
        if st.st_size > 0 and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            files.append(p)
    files = files[:6]

    def check(p):
        with open(m.path("r", "rootfs") + p, "rb") as f, open(p, "rb") as g:
            assert f.read() == g.read(), p

    held = [open(m.path("r", "rootfs") + p, "rb") for p in files]
    for p in files:
        check(p)  # opened again while open: the same id
    st = m.status()["passthrough"]
    assert st["backing_files"] == 6 and st["registered"] == 6
    for f, p in zip(held, files):
        assert f.read() == open(p, "rb").read()
        f.close()
    # (The kernel sends RELEASE in the background.)
    wait_for(lambda: m.status()["passthrough"]["backing_files"] == 4, "idle ids not let go")
    for p in files:
        check(p)
    st = m.status()
    assert st["passthrough"]["backing_files"] == 4
    # (Which 4 stayed is the clock's choice; at least the 2 let go came
    # back, at most all 6.)
    assert 8 <= st["passthrough"]["registered"] <= 12
    assert bundle(st, "r")["served"] == 0


def test_passthrough_files_must_be_a_number_in_range(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    for bad in ("-1", "16385", "x", ""):
        p = run([BUNDLEFS, str(tmp_path), spec, "--passthrough-files", bad], check=False)
        assert p.returncode == 2
        assert b"passthrough-files needs a number from 0 to 16384" in p.stderr


@pytest.fixture
def ext4(tmp_path):
    """A new, empty ext4 filesystem: there a freed inode number is the next
    one a file made in the same directory group gets, as on any busy store
    sooner or later."""
    image, point = tmp_path / "ext4.img", tmp_path / "ext4"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image)])
    point.mkdir()
    run(["mount", "-o", "loop", str(image), str(point)])
    yield point
    subprocess.run(["umount", "-l", str(point)])


def two_store_paths(tmp_path, top):
    """A store of its own under `top`: store paths a and b, and a spec of
    bundle x (closure: a) and bundle y (closure: b), served by the FUSE
    tree. Returns (store, a, b, spec)."""
    store = top / "nix" / "store"
    a, b = store / ("a" * 32 + "-a"), store / ("b" * 32 + "-b")
    for d in (a, b):
        d.mkdir(parents=True)
    closures = {}
    for name, path in (("x", a), ("y", b)):
        closures[name] = tmp_path / (name + ".closure")
        closures[name].write_text(STORE + "/" + path.name + "\n")
    spec = write_spec(tmp_path, "".join(
        "[%s]\nargs = %s/%s/f\nclosure = %s\nreadonly = true\ndata = fuse\n"
        % (n, STORE, p.name, closures[n]) for n, p in (("x", a), ("y", b))))
    return store, a, b, spec


@pytest.mark.skipif(not BUILT, reason="this build has no passthrough")
def test_an_inode_number_reused_in_another_bundle_is_never_read_for_it(ext4, tmp_path, mount):
    # Bundle x opens its file A/secret, whose backing id is then let go
    # (no idle ids kept). The file leaves the store (as a garbage
    # collection or `nix-store --optimise` makes it leave) while the
    # kernel still knows x's node, and a new file of bundle y takes its
    # inode number and is opened by y: a backing id under the same
    # (device, inode). x's next open must never be y's file.
    store, a, b, spec = two_store_paths(tmp_path, ext4)
    (a / "secret").write_bytes(b"the bytes of bundle x\n")
    (b / "filler").write_bytes(b"filler\n")
    m = mount(spec, "--real-store", str(store), "--db", "none", "--gcroots", "none",
              "--passthrough-files", "0")
    secret = m.path("x", "rootfs") + STORE + "/" + a.name + "/secret"
    with open(secret, "rb") as f:
        assert f.read() == b"the bytes of bundle x\n"
    assert m.status()["passthrough"]["registered"] == 1
    ino = os.stat(a / "secret").st_ino

    os.unlink(a / "secret")
    taken = None
    for i in range(64):
        p = b / ("new-%d" % i)
        p.write_bytes(b"the bytes of bundle y\n")
        if p.stat().st_ino == ino:
            taken = p
            break
    assert taken, "no new file took the inode number %d" % ino
    # y holds its file open: its backing id stays.
    held = open(m.path("y", "rootfs") + STORE + "/" + b.name + "/" + taken.name, "rb")
    assert held.read() == b"the bytes of bundle y\n"
    assert m.status()["passthrough"]["registered"] == 2

    # x's node is still the kernel's: its open reaches the daemon.
    try:
        with open(secret, "rb") as f:
            got = f.read()
    except OSError as e:
        got = e.errno
    finally:
        held.close()
    assert got != b"the bytes of bundle y\n", "bundle x was given bundle y's file"
    assert got == errno.ENOENT


def test_a_store_path_deleted_takes_no_file_from_another(tmp_path, mount):
    # One inode in two store paths (the hard link `nix-store --optimise`
    # makes), each in the closure of one bundle. Once bundle x has looked
    # its file up, deleting x's store path (nothing roots it: --gcroots
    # none) must leave bundle y its file, open and opened again.
    store, a, b, spec = two_store_paths(tmp_path, tmp_path)
    (a / "lib").write_bytes(b"one library, two store paths\n")
    os.link(a / "lib", b / "lib")
    m = mount(spec, "--real-store", str(store), "--db", "none", "--gcroots", "none")
    x = m.path("x", "rootfs") + STORE + "/" + a.name + "/lib"
    y = m.path("y", "rootfs") + STORE + "/" + b.name + "/lib"
    with open(x, "rb") as f:
        assert f.read() == b"one library, two store paths\n"
    held = open(y, "rb")
    try:
        os.unlink(a / "lib")
        os.rmdir(a)
        assert held.read() == b"one library, two store paths\n"
        with open(y, "rb") as f:
            assert f.read() == b"one library, two store paths\n"
    finally:
        held.close()
