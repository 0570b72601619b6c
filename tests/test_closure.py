# Closure resolution against a real Nix store built by nix-bin: every
# source (Nix's database, the reference scanner, a closure file) must give
# exactly what `nix-store -qR` gives for the same roots.
import os
import sqlite3
import subprocess

import pytest

from conftest import STORE, bundlectl, write_spec


def closure_of(spec, name="b", *opts):
    p = bundlectl(*opts, "closure", spec, name)
    return p.stdout.decode().split()


@pytest.fixture(scope="module")
def realistic(nix):
    return nix.build("realistic")


@pytest.mark.parametrize("source", ["db", "scan"])
@pytest.mark.parametrize("attr", ["app", "tiny", "realistic"])
def test_closure_equals_nix_store_qR(tmp_path, nix, attr, source):
    top = nix.build(attr)
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/x --flag\n" % top)
    opts = ["--db", "none"] if source == "scan" else []
    assert closure_of(spec, "b", *opts) == nix.closure(top)


def test_roots_from_every_argument_and_paths(tmp_path, nix):
    tiny, hello, links = nix.build("tiny"), nix.build("hello"), nix.build("links")
    # Roots hide inside arguments (PATH=...:...), and come from `paths`.
    spec = write_spec(
        tmp_path,
        "[b]\nargs = /bin/env PATH=%s/bin:/usr/bin --x=%s/bin/hello\npaths = %s\n"
        % (tiny, hello, links),
    )
    want = sorted(set(nix.closure(tiny)) | set(nix.closure(hello)) | set(nix.closure(links)))
    assert closure_of(spec) == want
    assert closure_of(spec, "b", "--db", "none") == want


def test_no_store_path_means_empty_closure(tmp_path):
    spec = write_spec(tmp_path, "[b]\nargs = /bin/sh -c true\n")
    assert closure_of(spec) == []


def test_closure_file(tmp_path, nix, app):
    cfile = tmp_path / "closure"
    cfile.write_text("\n".join(nix.closure(app)) + "\n")
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/app\nclosure = %s\n" % (app, cfile))
    assert closure_of(spec) == nix.closure(app)


def test_closure_file_must_hold_every_root(tmp_path, nix, app, tiny):
    cfile = tmp_path / "closure"
    cfile.write_text("\n".join(nix.closure(tiny)) + "\n")
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/app\nclosure = %s\n" % (app, cfile))
    p = bundlectl("closure", spec, "b", check=False)
    assert p.returncode == 2
    assert p.stderr.decode() == '%s:2: bundle "b": args: %s is not in the closure file %s\n' % (
        spec, app, cfile)


def test_closure_file_errors_name_its_own_lines(tmp_path, app):
    cfile = tmp_path / "closure"
    missing = STORE + "/" + "0" * 32 + "-gone"
    cfile.write_text("%s\nnot-a-path\n%s\n" % (app, missing))
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/app\nclosure = %s\n" % (app, cfile))
    p = bundlectl("check", spec, check=False)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert '%s:2: "not-a-path" is not a store path' % cfile in err
    # A file not everyone may read: its lines are not shown (the daemon's
    # messages reach whoever asks for its status), only where they are.
    os.chmod(cfile, 0o600)
    p = bundlectl("check", spec, check=False)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert "not-a-path" not in err
    assert ('%s:2: not a store path (closure file of bundle "b", %s:3; the line is not shown'
            % (cfile, spec)) in err
    missing_cf = tmp_path / "nope"
    spec2 = write_spec(tmp_path, "[b]\nargs = %s/bin/app\nclosure = %s\n" % (app, missing_cf), "s2.conf")
    p = bundlectl("check", spec2, check=False)
    assert p.returncode == 2
    assert p.stderr.decode() == '%s:3: bundle "b": closure file %s: No such file or directory\n' % (
        spec2, missing_cf)


def test_closure_file_entry_missing_from_store(tmp_path, app):
    cfile = tmp_path / "closure"
    missing = STORE + "/" + "0" * 32 + "-gone"
    cfile.write_text("%s\n%s\n" % (app, missing))
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/app\nclosure = %s\n" % (app, cfile))
    p = bundlectl("closure", spec, "b", check=False)
    assert p.returncode == 2
    assert ('%s:3: bundle "b": closure: %s: missing from the store' % (spec, missing)) in p.stderr.decode()


@pytest.mark.parametrize("opts", [[], ["--db", "none"]])
def test_missing_store_path(tmp_path, opts):
    gone = STORE + "/" + "1" * 32 + "-gone-1.0"
    spec = write_spec(tmp_path, "[ok]\nargs = /bin/true\n\n[b]\nargs = %s/bin/x\n" % gone)
    p = bundlectl(*opts, "check", spec, check=False)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert err.startswith('%s:5: bundle "b": args: %s' % (spec, gone)), err
    assert "ok" not in err


def test_store_kept_elsewhere(tmp_path, nix, app):
    # The logical store dir stays /nix/store while the bytes live in a
    # temporary folder, as with Nix's chroot stores.
    real = tmp_path / "root" / "nix" / "store"
    real.mkdir(parents=True)
    for p in nix.closure(app):
        subprocess.run(["cp", "-a", p, str(real)], check=True)
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/app\n" % app)
    got = closure_of(spec, "b", "--real-store", str(real), "--db", "none")
    assert got == nix.closure(app)
    # Without --db none the database beside the real store is used; there
    # is none, so the scanner answers.
    assert closure_of(spec, "b", "--real-store", str(real)) == nix.closure(app)
    # An explicit database that does not exist is an error.
    p = bundlectl("--real-store", str(real), "--db", str(tmp_path / "no.sqlite"),
                  "closure", spec, "b", check=False)
    assert p.returncode == 2 and b"no.sqlite" in p.stderr


def make_db(path, graph):
    """A database with Nix's schema for ValidPaths and Refs."""
    db = sqlite3.connect(path)
    db.executescript(
        "create table ValidPaths (id integer primary key autoincrement not null,"
        " path text unique not null, hash text not null, registrationTime integer not null,"
        " deriver text, narSize integer, ultimate integer, sigs text, ca text);"
        "create table Refs (referrer integer not null, reference integer not null,"
        " primary key (referrer, reference));"
    )
    ids = {}
    for p in graph:
        ids[p] = db.execute("insert into ValidPaths (path, hash, registrationTime) values (?, 'sha256:0', 0)",
                            (p,)).lastrowid
    for p, refs in graph.items():
        for r in refs:
            db.execute("insert into Refs values (?, ?)", (ids[p], ids[r]))
    db.commit()
    db.close()


def test_database_is_the_source_of_truth(tmp_path, nix, app):
    # The references come from the database, not from the files: a
    # reference only the database knows is followed, and a path it does
    # not register is refused.
    real = tmp_path / "nix" / "store"
    real.mkdir(parents=True)
    extra = STORE + "/" + "2" * 32 + "-extra"
    (real / os.path.basename(extra)).mkdir()
    stray = STORE + "/" + "3" * 32 + "-stray"
    (real / os.path.basename(stray)).mkdir()
    for p in nix.closure(app):
        subprocess.run(["cp", "-a", p, str(real)], check=True)
    graph = {p: nix.references(p) for p in nix.closure(app)}
    graph[app] = graph[app] + [extra]
    graph[extra] = []
    db = tmp_path / "nix" / "var" / "nix" / "db" / "db.sqlite"
    db.parent.mkdir(parents=True)
    make_db(str(db), graph)
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/app\n[s]\nargs = %s/x\n" % (app, stray))
    opts = ["--real-store", str(real)]
    assert closure_of(spec, "b", *opts) == sorted(nix.closure(app) + [extra])
    assert closure_of(spec, "b", *opts, "--db", "none") == nix.closure(app)
    p = bundlectl(*opts, "closure", spec, "s", check=False)
    assert p.returncode == 2
    assert p.stderr.decode() == '%s:4: bundle "s": args: %s is not a valid path in the Nix database %s\n' % (
        spec, stray, db)
    assert closure_of(spec, "s", *opts, "--db", "none") == [stray]


def test_check_reports_every_bundle(tmp_path, app, tiny):
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\n[t]\nargs = %s/bin/sh\n" % (app, tiny))
    p = bundlectl("check", spec)
    assert p.stdout.decode() == "%s: 2 bundles OK\n" % spec
    assert p.stderr == b""


def test_check_reports_problems_in_spec_order(tmp_path, tiny):
    # Bundles are kept sorted by name; problems are still reported in the
    # order the spec names the bundles.
    gone = [STORE + "/" + c * 32 + "-gone" for c in "456"]
    spec = write_spec(tmp_path, "[zz]\nargs = %s/x\n[ok]\nargs = %s/bin/sh\n[aa]\nargs = %s/x\n"
                      "[mm]\nargs = %s/x\n" % (gone[0], tiny, gone[1], gone[2]))
    p = bundlectl("check", spec, check=False)
    assert p.returncode == 2
    assert p.stdout == b""
    names = [line.split('bundle "')[1].split('"')[0] for line in p.stderr.decode().splitlines()]
    assert names == ["zz", "aa", "mm"]
