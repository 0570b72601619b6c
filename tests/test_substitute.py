# Lazy substitution: bundles whose closures are not in the store yet are
# served from binary caches' narinfo, and each missing store path is
# realised through Nix when a container first uses it (realise.h). Every
# store path here is salted (made for this module) and deleted by it; the
# caches are real ones written by `nix copy`, read from a file:// URL or
# over loopback HTTP (tools/bincache-serve).
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from conftest import BUNDLECTL, BUNDLEFS, ROOT, bundlectl, run, stop_mount, wait_for, write_spec

SERVE = os.path.join(ROOT, "tools", "bincache-serve")
SALT = "subst-" + uuid.uuid4().hex[:8]
NIX = ["--extra-experimental-features", "nix-command", "--option", "build-users-group", ""]


def nix_copy(to, paths):
    run(["nix", *NIX, "copy", "--to", to, *paths])


def valid(path):
    return subprocess.run(["nix-store", "--check-validity", path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def delete(paths):
    """Deletes whichever of the paths are here, referrers first (Nix sorts);
    also what a refused substitution left on disk, not valid."""
    here = [p for p in paths if valid(p) or os.path.lexists(p)]
    if here:
        run(["nix-store", "--delete", *here])
    assert not any(os.path.lexists(p) for p in paths)


class Caches:
    def __init__(self, nix, d):
        self.app = nix.build("app", salt=SALT)
        self.hello = nix.build("hello", salt=SALT)
        self.script = nix.build("script", salt=SALT)
        self.closure = nix.closure(self.app)
        self.hello_closure = nix.closure(self.hello)
        self.dir = d
        run(["nix-store", "--generate-binary-cache-key", "bundlefs-test-1", str(d / "sk"),
             str(d / "pk")])
        self.pk = (d / "pk").read_text().strip()
        self.signed = d / "signed"
        self.unsigned = d / "unsigned"
        nix_copy("file://%s?secret-key=%s&compression=none" % (self.signed, d / "sk"), [self.app])
        nix_copy("file://%s?compression=none" % self.unsigned, [self.app])
        # A cache with only hello's closure.
        self.partial = d / "partial"
        nix_copy("file://%s?secret-key=%s&compression=none" % (self.partial, d / "sk"),
                 [self.hello])
        # The signed cache, with one byte of script's NAR changed: of the
        # script's text, so that the archive still reads and its hash is
        # what is wrong.
        self.corrupt = d / "corrupt"
        shutil.copytree(self.signed, self.corrupt)
        nar = self.nar_of(self.corrupt, self.script)
        data = bytearray(nar.read_bytes())
        at = data.index(b"\x08\0\0\0\0\0\0\0contents") + 16
        size = int.from_bytes(data[at:at + 8], "little")
        data[at + 8 + size // 2] ^= 0x01
        nar.write_bytes(bytes(data))

    def env(self, require_sigs=True):
        """The daemon's Nix settings: no substituters of the machine's own,
        this module's key trusted."""
        e = dict(os.environ)
        e["NIX_CONFIG"] = "substituters =\ntrusted-public-keys = %s\nrequire-sigs = %s\n" % (
            self.pk, "true" if require_sigs else "false")
        return e

    @staticmethod
    def nar_of(cache, path):
        """The cache's NAR file of a store path (from its narinfo)."""
        name = os.path.basename(path)[:32] + ".narinfo"
        info = dict(line.split(": ", 1) for line in (cache / name).read_text().splitlines()
                    if ": " in line)
        return cache / info["URL"]


@pytest.fixture(scope="module")
def caches(nix, tmp_path_factory):
    c = Caches(nix, tmp_path_factory.mktemp("caches"))
    yield c
    delete(c.closure)


@pytest.fixture
def absent(caches):
    """The module's closure, deleted from the store before the test."""
    delete(caches.closure)
    return caches


class Server:
    def __init__(self, root, tmp_path, limit="0", tls=None, stall=None):
        port_file = str(tmp_path / "port")
        args = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []
        if stall is not None:
            args += ["--stall-nar", str(stall)]
        self.proc = subprocess.Popen([SERVE, str(root), "--port-file", port_file,
                                      "--limit", limit, *args], stdout=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(port_file), "bincache-serve did not start")
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", int(open(port_file).read()))
        self.cafile = tls[0] if tls else None

    def get(self, what):
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=self.cafile) if self.cafile else None
        with urllib.request.urlopen(self.url + "/-/" + what, context=ctx) as r:
            return r.read()

    def stats(self):
        return json.loads(self.get("stats"))

    def release(self):
        """Sends the rest of the NARs held (--stall-nar), and every NAR
        whole from now on."""
        self.get("release")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def server(tmp_path):
    servers = []

    def start(root, limit="0", tls=None, stall=None):
        s = Server(root, tmp_path, limit, tls, stall)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def hello_spec(tmp_path, c, extra=""):
    """hello, in a bundle whose closure is all of app's: a container that
    touches only part of its closure."""
    return write_spec(tmp_path, "[h]\nargs = %s/bin/hello one two\npaths = %s\nreadonly = true\n%s"
                      % (c.hello, c.app, extra))


HELLO_OUT = "Hello from bundlefs!\nargv[1]=one\nargv[2]=two\n"


def run_hello(runc, m):
    """Runs bundle h of mount m; it must print hello's output."""
    p = runc.run(m.path("h"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == HELLO_OUT


def status_of(m, name):
    return next(b for b in m.status()["bundles"] if b["name"] == name)


def test_runc_runs_a_closure_that_is_not_here(absent, mount, runc, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.signed,
              "--prefetch", "0", env=c.env())
    # The whole closure is listed before any of it is here.
    assert sorted(os.listdir(m.path("h", "rootfs", "nix", "store"))) == \
        sorted(os.path.basename(p) for p in c.closure)
    # Listing realises nothing; only the command may be coming already
    # (the bundle's first use starts it).
    assert set(p for p in c.closure if valid(p)) <= set(c.hello_closure)
    b = status_of(m, "h")
    assert b["local"] + b["realising"] + b["missing"] == len(c.closure)
    assert b["missing"] >= len(c.closure) - len(c.hello_closure)
    run_hello(runc, m)
    # Only what the container touched was realised (hello and glibc, its
    # closure: Nix realises references first); the rest is still absent.
    assert sorted(p for p in c.closure if valid(p)) == c.hello_closure
    b = status_of(m, "h")
    assert (b["local"], b["missing"]) == (len(c.hello_closure),
                                         len(c.closure) - len(c.hello_closure))
    assert m.status()["substitution"]["realised"] >= 1


def test_a_closure_not_here_is_not_kernel_native(absent, mount, runc, tmp_path):
    # A kernel-native root needs every store path of its closure: one that
    # is not all here is served by the FUSE tree, which realises on use.
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.signed,
              "--prefetch", "0", "--data", "native", env=c.env())
    run_hello(runc, m)
    b = status_of(m, "h")
    if "native roots built in" in run([BUNDLEFS, "--version"]).stdout.decode():
        assert b["data"] == {"path": "fuse",
                             "why": "store paths of its closure are not here yet"}, b
    assert os.readlink(os.path.join(m.mountpoint, "h")).startswith(".bundlefs/")


def test_prefetch_realises_the_rest_after_first_use(absent, mount, runc, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.signed, env=c.env())
    run_hello(runc, m)
    wait_for(lambda: status_of(m, "h")["missing"] + status_of(m, "h")["realising"] == 0,
             "prefetch did not realise the whole closure", timeout=60)
    run(["nix-store", "--verify-path", *c.closure])
    # And the served tree is the store's.
    for path in (p for p in c.closure if os.path.isdir(p)):
        assert sorted(os.listdir(m.path("h", "rootfs") + path)) == sorted(os.listdir(path))
    out = bundlectl("status", m.mountpoint).stdout.decode()
    assert "substitution:" in out


def test_http_cache_on_loopback(absent, mount, runc, server, tmp_path):
    c = absent
    s = server(c.signed)
    m = mount(hello_spec(tmp_path, c), "--substituter", s.url, "--prefetch", "0",
              env=c.env())
    run_hello(runc, m)
    st = s.stats()
    # Every narinfo of the closure (bundlefs resolving; Nix asks again for
    # what it realises), and the NARs of hello's closure only.
    assert st["nar"] == len(c.hello_closure)
    assert st["narinfo"] >= len(c.closure)
    assert sorted(p for p in c.closure if valid(p)) == c.hello_closure


def test_neither_libcurl_nor_libcrypto_is_linked():
    # They are loaded when a binary cache is first read (the next tests);
    # --version says which.
    for binary in (BUNDLEFS, BUNDLECTL):
        needed = [line.split()[-1] for line in run(["readelf", "-d", binary]).stdout.decode()
                  .splitlines() if "(NEEDED)" in line]
        assert "[libc.so.6]" in needed
        assert not [n for n in needed if re.search(r"libcurl|libcrypto|libssl", n)], needed
    version = run([BUNDLEFS, "--version"]).stdout.decode()
    assert re.search(r"\nbinary caches: \S*libcurl\.so\.\d+ and \S*libcrypto\.so\.\d+, "
                     r"loaded when first used\n", version), version


def mapped(pid):
    """The libraries process pid has mapped, by file name."""
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(line.split()[-1]) for line in f if ".so" in line}


def loaded(pid, lib):
    return any(name.startswith(lib + ".so") for name in mapped(pid))


def local_and_absent_spec(tmp_path, c, app):
    """Bundle ok, whose closure (app's) is here, and h (hello_spec's), whose
    closure is not."""
    return write_spec(tmp_path, "[ok]\nargs = %s/bin/app\nreadonly = true\n\n"
                      "[h]\nargs = %s/bin/hello\npaths = %s\nreadonly = true\n"
                      % (app, c.hello, c.app))


def read_app(m, app):
    with open(m.path("ok", "rootfs") + app + "/bin/app", "rb") as f:
        assert f.read() == open(app + "/bin/app", "rb").read()


def test_libcurl_is_loaded_by_the_first_fetch(absent, app, mount, server, tmp_path):
    c = absent
    s = server(c.signed)
    m = mount(local_and_absent_spec(tmp_path, c, app), "--substituter", s.url, "--prefetch", "0",
              "--data", "native", env=c.env())
    pid = m.pids()[0]
    # A bundle whose closure is here is served (on a kernel-native root,
    # where this build has them: making its image loads nothing either)
    # without libcurl or libcrypto.
    read_app(m, app)
    if "native roots built in" in run([BUNDLEFS, "--version"]).stdout.decode():
        assert status_of(m, "ok")["data"]["path"] == "native"
    assert not loaded(pid, "libcurl") and not loaded(pid, "libcrypto"), mapped(pid)
    assert s.stats()["narinfo"] == 0
    # The first fetch from the cache loads both (libcurl, and libcrypto for
    # the signatures), and works.
    assert sorted(os.listdir(m.path("h", "rootfs", "nix", "store"))) == \
        sorted(os.path.basename(p) for p in c.closure)
    assert s.stats()["narinfo"] >= len(c.closure)
    assert loaded(pid, "libcurl") and loaded(pid, "libcrypto"), mapped(pid)
    assert m.pids()[0] == pid
    read_app(m, app)


@pytest.mark.parametrize("lib", ["libcurl", "libcrypto"])
def test_a_library_that_cannot_be_loaded_fails_what_needs_it(absent, app, mount, server, tmp_path,
                                                             lib):
    # An empty file where the dynamic linker looks first: loading it
    # fails. Nix, which links both, runs without it.
    c = absent
    version = run([BUNDLEFS, "--version"]).stdout.decode()
    name = re.search(r"(\S*%s\.so\.\d+)" % lib, version).group(1)
    if "/" in name:
        pytest.skip("this build loads %s by its path (BUNDLEFS_DLOPEN_PATHS)" % name)
    broken = tmp_path / "lib"
    broken.mkdir()
    (broken / name).write_bytes(b"")
    bin = tmp_path / "bin"
    bin.mkdir()
    for tool in ("nix", "nix-store"):
        (bin / tool).write_text("#!/bin/sh\nunset LD_LIBRARY_PATH\nexec %s \"$@\"\n"
                                % shutil.which(tool))
        (bin / tool).chmod(0o755)
    env = c.env()
    env["LD_LIBRARY_PATH"] = str(broken)
    env["PATH"] = "%s:%s" % (bin, env["PATH"])
    # libcurl for an HTTP cache; libcrypto for the signatures of any.
    url = server(c.signed).url if lib == "libcurl" else "file://%s" % c.signed
    m = mount(local_and_absent_spec(tmp_path, c, app), "--substituter", url, "--prefetch", "0",
              env=env)
    pid = m.pids()[0]
    with pytest.raises(OSError) as e:
        os.listdir(m.path("h", "rootfs"))
    assert e.value.errno == 5
    problems = [p["message"] for p in status_of(m, "h")["problems"] if p["kind"] == "substitute"]
    why = "cannot load %s: %s: file too short" % (name, broken / name)
    assert any(why in p for p in problems), problems
    # The daemon serves on: what is here, from the same process.
    read_app(m, app)
    assert m.pids()[0] == pid


def test_concurrent_first_uses_wait_on_one_realisation(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.signed,
              "--prefetch", "0", env=c.env())
    target = m.path("h", "rootfs") + c.hello + "/bin/hello"
    results = []

    def use():
        try:
            results.append(os.stat(target).st_size)
        except OSError as e:
            results.append(e)

    threads = [threading.Thread(target=use) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 16 and all(r == os.stat(c.hello + "/bin/hello").st_size
                                      for r in results), results
    # (The path can be valid in Nix's database, and the lookups answered,
    # before nix-store exits and the realisation is counted.)
    wait_for(lambda: m.status()["substitution"]["realised"] >= 1, "no realisation was counted")
    assert m.status()["substitution"]["realised"] == 1


def test_a_corrupt_nar_answers_eio_and_the_rest_serves(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.corrupt,
              "--prefetch", "0", env=c.env())
    root = m.path("h", "rootfs")
    with pytest.raises(OSError) as e:
        os.stat(root + c.script + "/bin/greet")
    assert e.value.errno == 5  # EIO, under the path's own name
    assert not valid(c.script)
    # (What Nix wrote before refusing it is not served.)
    # Nix refused it: the hash does not match what the signed narinfo says.
    # The log says so in Nix's words, as an error (a lookup waited for it).
    failed = [(prio, msg) for prio, msg in m.lines() if "cannot be realised" in msg]
    assert len(failed) == 1 and failed[0][0] == 3, failed
    assert failed[0][1].startswith(
        "%s: cannot be realised: nix-store --realise failed: error: hash mismatch importing "
        "path '%s'; specified: sha256:" % (c.script, c.script)), failed
    assert " got: sha256:" in failed[0][1] and "build of" not in failed[0][1]
    assert m.stderr().count("cannot be realised") == 1
    # A second use within the retry time answers at once, logging nothing.
    with pytest.raises(OSError):
        os.stat(root + c.script)
    assert m.stderr().count("cannot be realised") == 1
    # The rest of the bundle serves.
    with open(root + c.hello + "/bin/hello", "rb") as f:
        assert f.read() == open(c.hello + "/bin/hello", "rb").read()
    # (Nix realised script's references before refusing script itself.)
    b = status_of(m, "h")
    here = [p for p in c.closure if valid(p)]
    assert c.script not in here and (b["local"], b["missing"]) == (len(here),
                                                                   len(c.closure) - len(here))


@pytest.mark.parametrize("source", ["caches", "closure file"])
def test_a_path_on_disk_but_not_valid_is_realised_before_it_is_served(absent, mount, tmp_path,
                                                                      source):
    # A path being substituted when the closure is resolved (the bundle's
    # command, which its first use starts realising) is on disk, half
    # written, and not valid yet. Served as it was then, a name not written
    # yet would answer ENOENT, which the kernel keeps for good, and a file
    # would keep the size it had. It is absent, realised before it is
    # served. Made here the way Nix leaves a substitution it refused (a
    # corrupt archive): on disk, not valid.
    c = absent
    p = subprocess.run(["nix-store", "--realise", c.script, "--option", "substituters",
                        "file://%s" % c.corrupt], env=c.env(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    assert p.returncode != 0 and b"hash mismatch" in p.stderr, p.stderr
    assert os.path.lexists(c.script) and not valid(c.script)
    extra = ""
    if source == "closure file":
        # (Nix's lock beside it, held while it writes a path, and left by
        # a substitution that failed: what sends a closure file's path to
        # the database.)
        assert os.path.exists(c.script + ".lock")
        cfile = tmp_path / "closure"
        cfile.write_text("".join(p + "\n" for p in c.closure))
        extra = "closure = %s\n" % cfile
    m = mount(hello_spec(tmp_path, c, extra), "--substituter", "file://%s" % c.signed,
              "--prefetch", "0", env=c.env())
    with open(m.path("h", "rootfs") + c.script + "/bin/greet", "rb") as f:
        served = f.read()
    assert valid(c.script)
    with open(c.script + "/bin/greet", "rb") as f:
        assert served == f.read()
    assert m.status()["substitution"]["realised"] >= 1


def test_a_closure_file_of_valid_paths_is_served_without_the_database(app, mount, nix, tmp_path):
    # A closure file needs no database: none is opened for one whose paths
    # are here (SQLite would write its shared-memory index), substitution on.
    cfile = tmp_path / "closure"
    cfile.write_text("".join(p + "\n" for p in nix.closure(app)))
    m = mount(write_spec(tmp_path, "[b]\nargs = %s/bin/app\nclosure = %s\nreadonly = true\n"
                         % (app, cfile)))
    assert sorted(os.listdir(m.path("b", "rootfs") + "/nix/store")) == \
        sorted(os.path.basename(p) for p in nix.closure(app))
    with open(m.path("b", "rootfs") + app + "/bin/app", "rb") as f:
        assert f.read() == open(app + "/bin/app", "rb").read()
    assert m.status()["substitution"]["on"] is True
    pid = m.pids()[0]
    opened = [os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)]
    assert not [f for f in opened if "db.sqlite" in f], opened


def test_a_path_the_cache_lost_is_reported_in_nix_s_words(absent, mount, tmp_path):
    c = absent
    cache = tmp_path / "cache"
    shutil.copytree(c.signed, cache)
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % cache, "--prefetch", "0",
              env=c.env())
    root = m.path("h", "rootfs")
    assert os.path.basename(c.script) in os.listdir(root + "/nix/store")  # (listed)
    # The cache loses script's narinfo after the closure was listed.
    (cache / (os.path.basename(c.script)[:32] + ".narinfo")).unlink()
    with pytest.raises(OSError) as e:
        os.stat(root + c.script + "/bin/greet")
    assert e.value.errno == 5
    failed = [(prio, msg) for prio, msg in m.lines() if "cannot be realised" in msg]
    assert failed == [(3, "%s: cannot be realised: nix-store --realise failed: don't know how "
                       "to build these paths: %s" % (c.script, c.script))], m.stderr()


def test_realisations_are_logged(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.corrupt, env=c.env())
    assert os.path.getsize(m.path("h", "rootfs") + c.hello + "/bin/hello") > 0
    # hello, with how long Nix took; prefetch then fails on script (its
    # NAR is corrupt): a warning, since no container waited for it. (The
    # lookup may be answered first: hello, realised from the bundle's
    # first use on, can be valid in Nix's database before nix-store exits
    # and the line is written.)
    def done():
        return [msg for prio, msg in m.lines()
                if prio == 6 and msg.startswith(c.hello + ": realised in ")]
    wait_for(done, "hello's realisation was not logged")
    done = done()
    assert len(done) == 1 and done[0].split()[3].isdigit() and done[0].endswith(" ms"), done
    wait_for(lambda: any("(prefetch)" in msg for _, msg in m.lines()),
             "prefetch did not fail", timeout=60)
    wait_for(lambda: (lambda s: s["running"] + s["queued"] == 0)(m.status()["substitution"]),
             "prefetch did not end", timeout=60)
    failed = [(prio, msg) for prio, msg in m.lines() if "cannot be realised" in msg]
    assert failed and all(prio == 4 and "(prefetch): nix-store --realise failed: " in msg
                          for prio, msg in failed), failed
    assert any("hash mismatch importing path '%s'" % c.script in msg for _, msg in failed)


def test_an_unsigned_cache_is_refused(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.unsigned,
              env=c.env())
    with pytest.raises(OSError) as e:
        os.listdir(m.path("h", "rootfs"))
    assert e.value.errno == 5
    b = status_of(m, "h")
    assert b["state"] == "retrying"
    assert any("no signature by a trusted key" in p["message"] and p["kind"] == "substitute"
               for p in b["problems"]), b
    assert not any(valid(p) for p in c.closure)
    # Without signatures required, the same cache serves.
    m2 = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.unsigned,
               "--prefetch", "0", name="mnt2", env=c.env(require_sigs=False))
    assert os.path.getsize(m2.path("h", "rootfs") + c.hello + "/bin/hello") > 0


def test_the_cache_going_away_leaves_local_paths_working(absent, mount, runc, server, tmp_path):
    c = absent
    s = server(c.signed)
    m = mount(hello_spec(tmp_path, c), "--substituter", s.url, "--prefetch", "0",
              env=c.env())
    run_hello(runc, m)
    s.stop()
    run_hello(runc, m)
    with pytest.raises(OSError) as e:
        os.stat(m.path("h", "rootfs") + c.script)
    assert e.value.errno == 5
    assert not valid(c.script)


def test_realised_paths_are_gc_roots(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.signed,
              "--prefetch", "0", env=c.env())
    os.stat(m.path("h", "rootfs") + c.hello + "/bin/hello")
    assert valid(c.hello)
    # Nix's collector may not delete what was realised while it serves.
    roots = run(["nix-store", "--gc", "--print-roots"]).stdout.decode()
    # (Nix lists the roots of valid paths; the others are waiting roots.)
    assert all(p in roots for p in c.closure if valid(p))
    p = run(["nix-store", "--delete", c.hello], check=False)
    assert p.returncode != 0 and b"still alive" in p.stderr
    assert all(valid(p) for p in c.hello_closure)


def test_a_missing_path_no_cache_has_is_reported(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.partial, env=c.env())
    with pytest.raises(OSError):
        os.listdir(m.path("h", "rootfs"))
    problems = "\n".join(p["message"] for p in status_of(m, "h")["problems"])
    assert {p["kind"] for p in status_of(m, "h")["problems"]} == {"substitute"}
    assert "%s: missing from the store, and no substituter has it" % c.app in problems
    assert "not there" in problems


def test_no_substitute_keeps_the_old_behaviour(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.signed,
              "--no-substitute", env=c.env())
    with pytest.raises(OSError):
        os.listdir(m.path("h", "rootfs"))
    assert m.status()["substitution"]["on"] is False
    assert not any(valid(p) for p in c.closure)


@pytest.mark.parametrize("args, message", [
    (["--substituter", "ftp://example"], "only file://, http:// and https://"),
    (["--substituter", "file://relative"], "absolute path"),
    (["--prefetch", "x"], "prefetch needs a number"),
    (["-o", "prefetch=65"], "prefetch needs a number"),
    (["--stall-timeout", "-1"], "stall-timeout needs a number of seconds"),
    (["-o", "stall-timeout=3601"], "stall-timeout needs a number of seconds"),
])
def test_bad_substitution_options_are_refused(tmp_path, args, message):
    from conftest import BUNDLEFS
    spec = write_spec(tmp_path, "[a]\nargs = /nix/store/00000000000000000000000000000000-x/bin/x\n")
    p = run([BUNDLEFS, *args, str(tmp_path), spec], check=False)
    assert p.returncode == 2
    assert message in p.stderr.decode()


def test_data_bind_waits_for_the_whole_closure(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c, "data = bind\n"), "--substituter", "file://%s" % c.signed,
              env=c.env())
    # The runtime binds every store path: config.json waits for all of them.
    with pytest.raises(OSError) as e:
        open(m.path("h", "config.json")).read()
    assert e.value.errno == 5
    wait_for(lambda: all(valid(p) for p in c.closure), "prefetch did not realise the closure",
             timeout=60)
    cfg = json.loads(open(m.path("h", "config.json")).read())
    binds = sorted(x["source"] for x in cfg["mounts"] if x["source"].startswith("/nix/store/"))
    assert binds == c.closure


def test_a_lookup_waiting_for_a_realisation_survives_a_failover(absent, mount, server, tmp_path):
    c = absent
    s = server(c.signed, limit="1M")  # seconds for hello's closure
    m = mount(hello_spec(tmp_path, c), "--substituter", s.url, "--prefetch", "0",
              "--log", str(tmp_path / "log"), env=c.env())
    target = m.path("h", "rootfs") + c.hello + "/bin/hello"
    result = []
    t = threading.Thread(target=lambda: result.append(os.path.getsize(target)))
    t.start()
    wait_for(lambda: s.stats()["nar"] > 0, "no NAR was fetched")
    m.kill_daemon()
    t.join(120)
    assert result == [os.path.getsize(c.hello + "/bin/hello")]
    assert valid(c.hello)
    successor = m.pids()[0]
    stop_mount(m)
    # (Its GC roots go when it exits, which the next test's deletes need.)
    wait_for(lambda: not os.path.exists("/proc/%d" % successor), "the successor did not exit")


def test_the_command_starts_coming_when_the_bundle_is_first_used(absent, mount, tmp_path):
    c = absent
    m = mount(hello_spec(tmp_path, c), "--substituter", "file://%s" % c.signed,
              "--prefetch", "0", env=c.env())
    # Reading config.json (what a runtime does first) starts realising
    # the command's store path, before the rootfs is used at all...
    json.loads(open(m.path("h", "config.json")).read())
    wait_for(lambda: valid(c.hello), "the command was not realised early", timeout=60)
    # ...and only that: the rest waits for use (prefetch is off here).
    assert sorted(p for p in c.closure if valid(p)) == c.hello_closure
    assert os.path.getsize(m.path("h", "rootfs") + c.hello + "/bin/hello") > 0


def test_nix_s_own_substituters_are_used(absent, mount, runc, tmp_path):
    c = absent
    env = c.env()
    env["NIX_CONFIG"] = env["NIX_CONFIG"].replace("substituters =",
                                                  "substituters = file://%s" % c.signed)
    m = mount(hello_spec(tmp_path, c), "--prefetch", "0", env=env)
    run_hello(runc, m)
    assert m.status()["substitution"]["substituters"] == ["file://%s" % c.signed]


def test_https_cache_with_nix_s_certificates(absent, mount, runc, server, tmp_path):
    c = absent
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert])
    s = server(c.signed, tls=(cert, key))
    # Without the certificate trusted, the cache is refused.
    m = mount(hello_spec(tmp_path, c), "--substituter", s.url, "--prefetch", "0",
              name="untrusted", env=c.env())
    with pytest.raises(OSError):
        os.listdir(m.path("h", "rootfs"))
    assert any("certificate" in p["message"] and p["kind"] == "substitute"
               for p in status_of(m, "h")["problems"])
    # Trusted the way Nix is told (NIX_SSL_CERT_FILE): bundlefs and the
    # nix-store it runs both check the server against it.
    env = c.env()
    env["NIX_SSL_CERT_FILE"] = cert
    m = mount(hello_spec(tmp_path, c), "--substituter", s.url, "--prefetch", "0", env=env)
    run_hello(runc, m)
    assert s.stats()["nar"] == len(c.hello_closure)


def test_a_cache_that_never_answers_holds_no_fuse_worker(absent, app, mount, tmp_path):
    import socket
    c = absent
    # Accepts connections (the kernel does, up to the backlog) and never
    # answers: resolving from it waits until libcurl gives up.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(128)
    url = "http://127.0.0.1:%d" % hole.getsockname()[1]
    spec = "".join("[s%d]\nargs = %s/bin/hello %d\nreadonly = true\n" % (i, c.hello, i)
                   for i in range(6))
    spec += "[ok]\nargs = %s/bin/app\nreadonly = true\n" % app
    m = mount(write_spec(tmp_path, spec), "--substituter", url, "--threads", "2",
              env=c.env())
    waiting = [threading.Thread(target=lambda i=i: os.path.exists(m.path("s%d" % i, "rootfs",
                                                                          "x")),
                                daemon=True) for i in range(6)]
    for t in waiting:
        t.start()
    time.sleep(0.5)  # (every lookup has reached the daemon)
    # Two FUSE workers and six bundles waiting on the cache: another
    # bundle is served at once all the same.
    t0 = time.monotonic()
    assert sorted(os.listdir(m.path("ok", "rootfs") + "/nix/store"))
    with open(m.path("ok", "rootfs") + app + "/bin/app", "rb") as f:
        assert f.read() == open(app + "/bin/app", "rb").read()
    assert time.monotonic() - t0 < 3
    assert all(t.is_alive() for t in waiting), "the cache answered?"
    # Stopping cancels the waits (the fixture checks a clean exit).
    t0 = time.monotonic()
    assert m.stop() == 0
    assert time.monotonic() - t0 < 10
    hole.close()


def waiting_in_fuse(pid):
    """Is process pid waiting for an answer of a FUSE daemon?"""
    try:
        with open("/proc/%d/stack" % pid) as f:
            return "request_wait_answer" in f.read()
    except OSError:
        return False


def stat_reader(path):
    """A process that stats path (a reader held in the kernel while the
    daemon has not answered)."""
    return subprocess.Popen(["stat", "-c", "%s", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.mark.parametrize("then", ["the cache sends", "the daemon stops"])
def test_a_reader_killed_while_a_cache_hangs_goes_at_once(absent, mount, server, tmp_path, then):
    # A cache that stops sending mid-NAR holds the lookups waiting for the
    # realisation; the kernel cannot take a reader out of a FUSE request
    # the daemon has not answered, even on SIGKILL: it interrupts it, and
    # the daemon answers the interrupt at once, while the realisation goes
    # on for the other reader.
    c = absent
    s = server(c.signed, stall=4096)
    # (Two bundles: two lookups of the path, in two directories. The
    # kernel has a second lookup of one name in one directory wait for
    # the first.)
    spec = "".join("[%s]\nargs = %s/bin/hello\npaths = %s\nreadonly = true\n" % (b, c.hello, c.app)
                   for b in ("h", "h2"))
    m = mount(write_spec(tmp_path, spec), "--substituter", s.url, "--prefetch", "0", "-v",
              env=c.env())
    targets = [m.path(b, "rootfs") + c.hello + "/bin/hello" for b in ("h", "h2")]
    # (The closures resolved first, so that what the readers wait for is
    # the store path, not the closure.)
    for b in ("h", "h2"):
        assert os.path.basename(c.hello) in os.listdir(m.path(b, "rootfs") + "/nix/store")
    readers = [stat_reader(t) for t in targets]
    try:
        wait_for(lambda: s.stats()["stalled"] > 0, "no NAR stalled")
        wait_for(lambda: all(waiting_in_fuse(r.pid) for r in readers),
                 "the readers are not waiting for the daemon")
        t0 = time.monotonic()
        readers[0].kill()
        readers[0].wait(20)
        assert time.monotonic() - t0 < 5
        # (The daemon answered it: interrupts reach it.)
        assert sum("lookup of %s: interrupted (its caller got a signal): answered EINTR"
                   % os.path.basename(c.hello) in msg for _, msg in m.lines()) == 1, m.stderr()
        # The other reader waits on, for the same realisation.
        time.sleep(0.5)
        assert readers[1].poll() is None and waiting_in_fuse(readers[1].pid)
        assert s.stats()["abandoned"] == 0 and not valid(c.hello)
        if then == "the cache sends":
            s.release()
            out, err = readers[1].communicate(timeout=60)
            assert readers[1].returncode == 0, err
            assert int(out) == os.path.getsize(c.hello + "/bin/hello")
            assert valid(c.hello)
            wait_for(lambda: m.status()["substitution"]["realised"] >= 1, "nothing realised")
            # The mount serves on, from the same daemon.
            assert os.path.getsize(targets[0]) == int(out)
            assert m.proc.poll() is None
        else:
            # The realisation ends unanswered: the reader waiting is
            # answered EIO, the one interrupted not again, and the daemon
            # exits cleanly.
            assert m.stop() == 0
            out, err = readers[1].communicate(timeout=10)
            assert readers[1].returncode != 0 and b"Input/output error" in err, err
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()


def test_a_cache_that_hangs_mid_transfer_fails_within_the_stall_timeout(absent, app, mount,
                                                                       server, tmp_path):
    c = absent
    s = server(c.signed, stall=4096)
    m = mount(local_and_absent_spec(tmp_path, c, app), "--substituter", s.url, "--prefetch", "0",
              "--stall-timeout", "3", env=c.env())
    pid = m.pids()[0]
    target = m.path("h", "rootfs") + c.hello + "/bin/hello"
    result = []

    def use():
        t0 = time.monotonic()
        try:
            os.stat(target)
            result.append(("answered", time.monotonic() - t0))
        except OSError as e:
            result.append((e.errno, time.monotonic() - t0))

    # (A thread: on a daemon that waits for Nix's 300 s, the test fails
    # first, and the teardown's stop answers the lookup.)
    t = threading.Thread(target=use, daemon=True)
    t.start()
    t.join(40)
    assert result, "the lookup waited longer than 40 s"
    # EIO once the NAR had sent nothing for 3 s (curl measures the speed
    # over its last seconds: a few more).
    assert result[0][0] == 5 and 3 <= result[0][1] < 20, result
    # (Nix gave up and closed the connection; the server sees it soon.)
    assert s.stats()["stalled"] >= 1
    wait_for(lambda: s.stats()["abandoned"] >= 1, "Nix did not give up on the NAR")
    # The log says why, in Nix's words and naming the setting.
    failed = [(prio, msg) for prio, msg in m.lines() if "cannot be realised" in msg]
    assert len(failed) == 1 and failed[0][0] == 3, failed
    assert "nix-store --realise failed: " in failed[0][1]
    assert re.search(r"unable to download '%s/nar/[^']*'" % re.escape(s.url), failed[0][1])
    assert "(curl error: Timeout was reached)" in failed[0][1], failed
    assert failed[0][1].endswith("; a cache sent nothing for 3 s (--stall-timeout)"), failed
    assert not valid(c.hello)
    # The mount serves on, from the same daemon.
    read_app(m, app)
    assert m.pids()[0] == pid
