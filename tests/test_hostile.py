# Hostile trees: a store built by the test (not by Nix, which would refuse
# most of this) holding escaping symlinks, swapped directories, FIFOs,
# devices, setuid files, huge directories, odd names, deep trees and hard
# links. bundlefs must serve it without following anything, blocking, or
# showing anything outside the closure.
import ctypes
import errno
import hashlib
import os
import random
import stat
import subprocess
import threading
import time

import pytest

from conftest import NATIVE, STORE, run, write_spec


def h(i):
    return "%032d" % i  # digits are nix-base32


class FakeStore:
    """A store kept under a temporary folder (logical dir /nix/store),
    with closure files instead of a database."""

    def __init__(self, tmp_path, busybox, confine):
        self.tmp = tmp_path
        self.confine = confine
        self.real = tmp_path / "root" / "nix" / "store"
        self.real.mkdir(parents=True)
        self.n = 0
        # a static busybox to run things chrooted in the rootfs
        self.bb = self.path("busybox")
        os.makedirs(self.real / self.bb / "bin")
        with open(busybox, "rb") as src, open(self.real / self.bb / "bin" / "busybox", "wb") as dst:
            dst.write(src.read())
        os.chmod(self.real / self.bb / "bin" / "busybox", 0o555)

    def path(self, name):
        self.n += 1
        return h(self.n) + "-" + name

    def mkpath(self, name):
        base = self.path(name)
        (self.real / base).mkdir()
        return base

    def spec(self, bundles):
        """bundles: {name: [bases]}; the first base holds the program."""
        text = ""
        for name, bases in bundles.items():
            cf = self.tmp / ("%s.closure" % name)
            cf.write_text("".join("%s/%s\n" % (STORE, b) for b in bases + [self.bb]))
            text += "[%s]\nargs = %s/%s/bin/busybox\nclosure = %s\n" % (name, STORE, self.bb, cf)
        return write_spec(self.tmp, text)

    def opts(self):
        walk = ("--no-openat2",) if self.confine == "walk" else ()
        return ("--real-store", str(self.real), "--db", "none", "--gcroots", "none") + walk


# Every hostile tree is served twice: confined by openat2, and by the
# component-at-a-time walk that kernels without openat2 get.
@pytest.fixture(params=["openat2", "walk"])
def fake(request, tmp_path, nix):
    bb = [p for p in nix.closure(nix.build("tiny")) if p.endswith("-busybox")][0]
    return FakeStore(tmp_path, bb + "/bin/busybox", request.param)


def chroot_sh(rootfs, fake, script):
    return subprocess.run(
        ["/usr/sbin/chroot", rootfs, "%s/%s/bin/busybox" % (STORE, fake.bb), "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
        env={"PATH": "/nonexistent"},
    )


def test_escaping_symlinks_are_served_not_followed(mount, fake):
    p = fake.mkpath("evil")
    outside = fake.mkpath("outside")  # a store path not in the closure
    (fake.real / outside / "secret").write_text("outside the closure\n")
    targets = {"root": "/", "etc": "/etc", "passwd": "/etc/passwd", "up": "../../..",
               "upup": "../../../../../../../../etc/passwd",
               "other": "%s/%s/secret" % (STORE, outside), "self": "self"}
    for name, t in targets.items():
        os.symlink(t, fake.real / p / name)
    m = mount(fake.spec({"b": [p]}), *fake.opts())
    rootfs = m.path("b", "rootfs")
    for name, t in targets.items():
        assert os.readlink("%s%s/%s/%s" % (rootfs, STORE, p, name)) == t
    bb = "%s/%s/bin/busybox" % (STORE, fake.bb)
    d = "%s/%s" % (STORE, p)
    r = chroot_sh(rootfs, fake,
                  "%s ls $(%s readlink -f %s/root); %s cat %s/passwd %s/upup %s/other %s/self; echo rc=$?"
                  % (bb, bb, d, bb, d, d, d, d))
    out = r.stdout.decode()
    # "/" is the rootfs: only the skeleton; nothing of the host or outside
    assert out.split()[:4] == ["dev", "nix", "proc", "sys"]
    assert "root:" not in out and "outside the closure" not in out
    assert out.strip().endswith("rc=1")


def test_swapped_directory_never_shows_the_canary(mount, fake):
    # A directory of a served store path is replaced, again and again, by a
    # symlink to a directory holding a canary, while lookups and reads run.
    p = fake.mkpath("swap")
    good = fake.real / p / "dir"
    good.mkdir()
    (good / "file").write_text("good\n")
    canary = fake.tmp / "canary"
    canary.mkdir()
    (canary / "file").write_text("CANARY\n")
    (canary / "other").write_text("CANARY\n")
    m = mount(fake.spec({"b": [p]}), *fake.opts())
    served = "%s%s/%s/dir" % (m.path("b", "rootfs"), STORE, p)
    link = fake.real / p / "dir.link"
    os.symlink(str(canary), link)
    stop = threading.Event()

    def swapper():
        # renameat2(RENAME_EXCHANGE) swaps the two names atomically: "dir"
        # is always either the directory or the symlink.
        libc = ctypes.CDLL(None, use_errno=True)
        a, b = str(fake.real / p / "dir").encode(), str(link).encode()
        while not stop.is_set():
            if libc.renameat2(-100, a, -100, b, 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
                raise OSError(ctypes.get_errno(), "renameat2")

    # The reader runs chrooted into the rootfs, as a container does: the
    # symlink, served as a symlink, then resolves inside the rootfs. Only a
    # daemon that followed it could produce the canary.
    rootfs = m.path("b", "rootfs")
    inside = "%s/%s/dir" % (STORE, p)
    drop = os.open("/proc/sys/vm/drop_caches", os.O_WRONLY)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.chroot(rootfs)
            os.chdir("/")
            seen, errors = {}, {}
            for i in range(100000):
                if i % 1000 == 0:
                    # forget cached names so that lookups reach the daemon
                    os.write(drop, b"2")
                try:
                    with open(os.path.join(inside, "file" if i % 2 else "other")) as f:
                        data = f.read()
                    seen[data] = seen.get(data, 0) + 1
                except OSError as e:
                    errors[e.errno] = errors.get(e.errno, 0) + 1
            os.write(wfd, repr((seen, errors)).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    os.close(drop)
    t = threading.Thread(target=swapper)
    t.start()
    try:
        with os.fdopen(rfd, "rb") as f:
            seen, errors = eval(f.read().decode())
        os.waitpid(pid, 0)
    finally:
        stop.set()
        t.join()
    assert "CANARY\n" not in seen, (seen, errors)
    assert set(errors) <= {errno.ENOENT, errno.ELOOP}, errors
    assert seen.get("good\n", 0) > 0, (seen, errors)


def test_store_dir_lists_exactly_the_closure(mount, fake):
    a, b, c = fake.mkpath("a"), fake.mkpath("b"), fake.mkpath("c")
    (fake.real / "not-a-store-path").mkdir()
    (fake.real / (a + ".lock")).write_text("")
    m = mount(fake.spec({"x": [a, b]}), *fake.opts())
    store = m.path("x", "rootfs") + STORE
    assert sorted(os.listdir(store)) == sorted([a, b, fake.bb])
    for hidden in [c, "not-a-store-path", a + ".lock"]:
        with pytest.raises(FileNotFoundError):
            os.lstat(os.path.join(store, hidden))


def test_special_files_are_not_served(mount, fake):
    p = fake.mkpath("special")
    d = fake.real / p
    os.mkfifo(d / "fifo")
    os.mknod(d / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(d / "loop", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    import socket
    s = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(d)  # socket paths are limited to 108 bytes
    try:
        s.bind("sock")
    finally:
        os.chdir(cwd)
        s.close()
    (d / "suid").write_text("#!/bin/sh\n")
    os.chmod(d / "suid", 0o6755)
    (d / "plain").write_text("plain\n")
    m = mount(fake.spec({"b": [p]}), *fake.opts())
    served = "%s%s/%s" % (m.path("b", "rootfs"), STORE, p)
    assert sorted(os.listdir(served)) == ["plain", "suid"]
    for name in ["fifo", "null", "loop", "sock"]:
        with pytest.raises(FileNotFoundError):
            os.lstat(os.path.join(served, name))
    st = os.stat(os.path.join(served, "suid"))
    assert stat.S_IMODE(st.st_mode) == 0o755  # served without its danger
    # A regular file swapped for a FIFO after lookup: opening it must not
    # block the daemon (it answers EIO), and other requests go on.
    os.stat(os.path.join(served, "plain"))
    os.rename(d / "plain", d / "plain.old")
    os.mkfifo(d / "plain")
    done = []

    def opener():
        try:
            open(os.path.join(served, "plain")).read()
        except OSError as e:
            done.append(e.errno)

    t = threading.Thread(target=opener)
    t.start()
    t.join(5)
    assert not t.is_alive(), "open blocked on a FIFO"
    assert done == [errno.ENOENT]  # not the file that was looked up
    assert os.listdir(served)


def test_huge_directory_and_odd_names(mount, fake):
    p = fake.mkpath("odd")
    d = fake.real / p / "big"
    d.mkdir()
    rnd = random.Random(3)
    names = set()
    while len(names) < 10000:
        n = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(240))
        names.add(n + "%015d" % len(names))  # 255 bytes
    for n in names:
        (d / n).write_bytes(b"")
    odd = fake.real / p / "odd"
    odd.mkdir()
    odd_names = [b"new\nline", b"\xff\xfe not utf-8", b"tab\there", b" lead", b"-dash", b"\\back"]
    for n in odd_names:
        with open(os.path.join(bytes(odd), n), "wb") as f:
            f.write(n)
    target = "/" + "t" * 4094  # a 4,095-byte symlink target
    os.symlink(target, fake.real / p / "longlink")
    deep = fake.real / p / "deep"
    cur = deep
    for i in range(200):
        cur = cur / "d"
    os.makedirs(cur)
    (cur / "bottom").write_text("bottom\n")

    m = mount(fake.spec({"b": [p]}), *fake.opts())
    served = "%s%s/%s" % (m.path("b", "rootfs"), STORE, p)
    listed = os.listdir(os.path.join(served, "big"))
    assert len(listed) == 10000 and set(listed) == names
    assert sorted(os.listdir(os.path.join(bytes(served, "utf-8"), b"odd"))) == sorted(odd_names)
    for n in odd_names:
        with open(os.path.join(bytes(served, "utf-8"), b"odd", n), "rb") as f:
            assert f.read() == n
    assert os.readlink(os.path.join(served, "longlink")) == target
    with open(os.path.join(served, "deep", *["d"] * 200, "bottom")) as f:
        assert f.read() == "bottom\n"


def test_paths_longer_than_path_max(mount, fake):
    # 30 levels of 200-byte names: 6,000 bytes below the store path.
    p = fake.mkpath("long")
    name = "n" * 200
    fd = os.open(fake.real / p, os.O_RDONLY)
    for _ in range(30):
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o444, dir_fd=fd)
    os.write(leaf, b"deep\n")
    os.close(leaf)
    os.close(fd)
    m = mount(fake.spec({"b": [p]}), *fake.opts())
    fd = os.open("%s%s/%s" % (m.path("b", "rootfs"), STORE, p), os.O_RDONLY)
    for _ in range(30):
        nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(fd)
    # read the leaf through a fresh descriptor chain (the daemon resolves
    # the 6,000-byte path in pieces)
    fd = os.open("%s%s/%s" % (m.path("b", "rootfs"), STORE, p), os.O_RDONLY)
    for _ in range(30):
        nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    leaf = os.open("leaf", os.O_RDONLY, dir_fd=fd)
    assert os.read(leaf, 100) == b"deep\n"
    os.close(leaf)
    os.close(fd)


def test_hard_links_across_store_paths(mount, fake):
    # As `nix-store --optimise` leaves them: identical files in different
    # store paths are hard links to one inode in .links.
    links = fake.real / ".links"
    links.mkdir()
    a, b = fake.mkpath("a"), fake.mkpath("b")
    (links / "shared").write_text("shared content\n")
    os.chmod(links / "shared", 0o444)
    for p in (a, b):
        os.link(links / "shared", fake.real / p / "f")
    (fake.real / a / "own").write_text("own\n")
    m = mount(fake.spec({"x": [a, b], "y": [b]}), *fake.opts())
    fa = "%s%s/%s/f" % (m.path("x", "rootfs"), STORE, a)
    fb = "%s%s/%s/f" % (m.path("x", "rootfs"), STORE, b)
    fy = "%s%s/%s/f" % (m.path("y", "rootfs"), STORE, b)
    sa, sb, sy = os.stat(fa), os.stat(fb), os.stat(fy)
    if NATIVE:
        # A kernel-native root never merges them: each store path's file
        # is its own (served from its own path, which may be collected
        # apart from the other).
        assert sa.st_ino != sb.st_ino and sa.st_nlink == sb.st_nlink == sy.st_nlink == 1
    else:
        # One node per store path: the same store path's file in two
        # bundles is one inode; the other store path's is its own (read
        # by a path in its own store path, which may be collected apart).
        assert sb.st_ino == sy.st_ino and sa.st_ino != sb.st_ino
        assert sa.st_nlink == sb.st_nlink == sy.st_nlink == 3
    assert open(fa).read() == open(fb).read() == open(fy).read() == "shared content\n"
    assert os.stat("%s%s/%s/own" % (m.path("x", "rootfs"), STORE, a)).st_ino != sa.st_ino


def test_store_path_removed_under_a_live_mount(mount, fake):
    a, b = fake.mkpath("a"), fake.mkpath("b")
    for p in (a, b):
        (fake.real / p / "f").write_text(p)
    m = mount(fake.spec({"x": [a], "y": [b]}), *fake.opts())
    fa = "%s%s/%s/f" % (m.path("x", "rootfs"), STORE, a)
    fb = "%s%s/%s/f" % (m.path("y", "rootfs"), STORE, b)
    assert open(fa).read() == a
    subprocess.run(["rm", "-rf", str(fake.real / a)], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    with pytest.raises(OSError) as e:
        open(fa).read()
    assert e.value.errno in (errno.ENOENT, errno.EIO)
    # The closure was resolved while the path existed: it is still listed,
    # but empty (as a deleted directory is) or an error, never stale data.
    # A kernel-native root lists what its image holds: the file is there,
    # and its open gives ENOENT.
    try:
        assert os.listdir(os.path.dirname(fa)) == (["f"] if NATIVE else [])
    except OSError as e:
        assert e.errno in (errno.ENOENT, errno.EIO)
    assert open(fb).read() == b


def test_no_extended_attributes_beyond_the_store(mount, fake):
    p = fake.mkpath("x")
    (fake.real / p / "f").write_text("x")
    os.setxattr(fake.real / p / "f", "user.planted", b"1")
    m = mount(fake.spec({"b": [p]}), *fake.opts())
    f = "%s%s/%s/f" % (m.path("b", "rootfs"), STORE, p)
    for path in [f, m.path("b", "config.json"), m.path("b", "rootfs")]:
        try:
            names = os.listxattr(path)
        except OSError as e:
            assert e.errno == errno.EOPNOTSUPP
            names = []
        assert set(names) <= {"user.planted"}


@pytest.mark.skipif(NATIVE, reason="a kernel-native root has no nodes of the daemon's: "
                    "each file is looked up by its path when it is opened")
def test_a_reused_inode_number_is_not_the_old_file(mount, fake):
    # Files are shared across bundles by (device, inode). Once a served
    # file is deleted, its inode number can go to a new file of another
    # store path: that file must be served as itself, never with the old
    # file's node, attributes or cached bytes.
    a, filler, b = fake.mkpath("a"), fake.mkpath("filler"), fake.mkpath("b")
    (fake.real / a / "secret").write_text("SECRET-OF-A")
    for i in range(300):
        (fake.real / filler / ("f%d" % i)).write_text("filler %d\n" % i)
    # (Passthrough keeps the files nobody has open registered, up to
    # --passthrough-files: fewer than the fillers.)
    m = mount(fake.spec({"x": [a, filler], "y": [b]}), *fake.opts(),
              "--passthrough-files", "64")
    xstore = m.path("x", "rootfs") + STORE
    with open("%s/%s/secret" % (xstore, a)) as f:
        assert f.read() == "SECRET-OF-A"  # now in the kernel's page cache
    ino = os.stat(fake.real / a / "secret").st_ino
    os.unlink(fake.real / a / "secret")
    # Reading other files makes the daemon (its descriptors, or its
    # passthrough ids) let go of the deleted file.
    for i in range(300):
        with open("%s/%s/f%d" % (xstore, filler, i)) as f:
            f.read()
    # (The daemon closes the deleted file when it evicts it; the inode is
    # free for reuse a moment later. New files are made beside the deleted
    # one, where ext4 gives the lowest free number of the same inode group,
    # and the one that gets its number is moved to the other store path.
    # Files deleted earlier, by other tests, may leave lower numbers free:
    # those are filled first, in bursts.)
    reused = None
    deadline = time.monotonic() + 30
    k = 0
    while not reused and time.monotonic() < deadline:
        for _ in range(500):
            p = fake.real / a / ("new%d" % k)
            p.write_text("mine-%d" % k)
            if os.stat(p).st_ino == ino:
                reused = "new%d" % k
                os.rename(p, fake.real / b / reused)
                break
            k += 1
        time.sleep(0.01)
    assert reused, "the filesystem did not reuse the inode number"
    served = "%s%s/%s/%s" % (m.path("y", "rootfs"), STORE, b, reused)
    with open(served) as f:
        assert f.read() == "mine-%s" % reused[3:]
    assert os.stat(served).st_size == len("mine-%s" % reused[3:])
