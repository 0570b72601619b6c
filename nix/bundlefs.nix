# bundlefs's Nix front door: nixpkgs' ociTools.buildContainer interface,
# written with Nix builtins only (no nixpkgs), for bundlefs.
#
#   let bfs = import ./nix/bundlefs.nix {}; in
#   bfs.buildContainer { args = [ "${hello}/bin/hello" ]; }
#   bfs.bundles { hello = { args = [ ... ]; }; web = { args = [ ... ]; readonly = true; }; }
#
# Each builds a small store path holding spec.json (the spec bundlefs
# mounts: `bundlefs /mnt/bundles result/spec.json`) and one closure file per
# bundle, written at build time from exportReferencesGraph: the closure is
# known without Nix's database, nothing of it is copied, and the store path
# refers to every path of every closure, so a GC root on it (nix-build -o)
# keeps them all alive.
#
# Arguments of a bundle: buildContainer's (args, mounts, os, arch,
# readonly), an optional name (buildContainer { ... } only; default: the
# command's file name), and bundlefs's own optional keys (paths, env, cwd,
# hostname, user, terminal, compat, data; see docs/spec.md). Errors in them
# stop the evaluation with a message naming the bundle and the argument.
#
# The builder is /bin/sh and uses mkdir; Nix's sandbox, where it is on,
# must provide both (sandbox-paths).
{ system ? builtins.currentSystem }:
let
  inherit (builtins) attrNames concatLists concatStringsSep elem filter genList head
    isAttrs isBool isList isString length listToAttrs match split stringLength
    substring throw toJSON typeOf;

  storeDir = builtins.storeDir;

  # Store paths named in a string: "/nix/store/<hash>-<name>" (the same
  # paths bundlefs takes as roots from args and paths).
  storePathsIn = s:
    map head (filter isList (split "(${storeDir}/[0-9a-df-np-sv-z]{32}-[-+._?=0-9A-Za-z]+)" s));

  isStorePath = s: substring 0 (stringLength storeDir + 1) s == "${storeDir}/";

  # A path without string context (a plain string) becomes an input of the
  # build through builtins.storePath, so that its references can be
  # exported; one with context (a derivation's output) already is.
  asInput = s: if builtins.hasContext s then s else builtins.storePath s;

  optionalKeys = [ "mounts" "os" "arch" "readonly" "paths" "env" "cwd" "hostname" "user"
                   "terminal" "compat" "data" ];

  fail = where: msg: throw "bundlefs.nix: ${where}: ${msg}";

  # The bundle, checked, as the spec's JSON object (without its closure).
  checkBundle = where: b:
    let
      unknown = filter (k: !(elem k ([ "args" ] ++ optionalKeys))) (attrNames b);
      args = b.args;
      paths = b.paths or [ ];
      strings = l: isList l && filter (x: !(isString x)) l == [ ];
    in
    if !(isAttrs b) then fail where "a bundle is an attribute set, not a ${typeOf b}"
    else if unknown != [ ] then
      fail where "unknown argument `${head unknown}' (known: args, ${concatStringsSep ", " optionalKeys})"
    else if !(b ? args) then fail where "args is required: the container's command, a list of strings"
    else if !(strings args) || args == [ ] then fail where "args must be a non-empty list of strings"
    else if !(isStorePath (head args)) then
      fail where "args: the command `${head args}' is not in the Nix store (${storeDir})"
    else if !(strings paths) then fail where "paths must be a list of store paths"
    else if filter (p: !(isStorePath p)) paths != [ ] then
      fail where "paths: `${head (filter (p: !(isStorePath p)) paths)}' is not in the Nix store (${storeDir})"
    else if b ? mounts && !(isAttrs b.mounts) then
      fail where "mounts is an attribute set of destination to { type, source, options }"
    else if b ? readonly && !(isBool b.readonly) then fail where "readonly must be true or false"
    else b;

  validName = n: match "[A-Za-z0-9._+-]+" n != null && n != "." && n != ".." && stringLength n <= 255;

  # The command's file name, as a bundle name.
  defaultName = args:
    let
      parts = filter isString (split "/" (head args));
      last = builtins.elemAt parts (length parts - 1);
      clean = concatStringsSep "" (map (c: if match "[A-Za-z0-9._+-]" c != null then c else "-")
        (genList (i: substring i 1 last) (stringLength last)));
    in
    if validName clean then clean else "bundle";

  mkSpec = drvName: bundles:
    let
      names = attrNames bundles;
      checked = map (n:
        if !(validName n) then
          fail "bundle `${n}'" "a bundle name is 1 to 255 of A-Z a-z 0-9 . _ + - (not . or ..)"
        else { name = n; value = checkBundle "bundle `${n}'" bundles.${n}; }) names;
      # Each bundle's roots: the store paths in its args and paths.
      rootsOf = b: concatLists (map storePathsIn (b.args ++ (b.paths or [ ])));
      # graph-K-I: root I of the K-th bundle (names may be prefixes of
      # each other; numbers are not ambiguous).
      graphs = concatLists (genList (k:
        let c = builtins.elemAt checked k; roots = rootsOf c.value; in
        genList (i: { file = "graph-${toString k}-${toString i}"; path = asInput (builtins.elemAt roots i); })
          (length roots)) (length checked));
      spec = listToAttrs (map (c: {
        inherit (c) name;
        value = c.value // { closure = "${builtins.placeholder "out"}/${c.name}.closure"; };
      }) checked);
    in
    if names == [ ] then fail "bundles" "no bundle given"
    else builtins.derivation {
      name = drvName;
      inherit system;
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      specJSON = toJSON spec;
      passAsFile = [ "specJSON" ];
      bundleNames = names;
      exportReferencesGraph = concatLists (map (g: [ g.file g.path ]) graphs);
      args = [ "-ec" ''
        mkdir "$out"
        # The graph files list each path, its deriver, the number of its
        # references and those; the closure file lists the paths.
        k=0
        for name in $bundleNames; do
          : > "$out/$name.closure"
          i=0
          while [ -e "graph-$k-$i" ]; do
            while read -r path; do
              read -r deriver
              read -r n
              printf '%s\n' "$path" >> "$out/$name.closure"
              while [ "$n" -gt 0 ]; do read -r ref; n=$((n - 1)); done
            done < "graph-$k-$i"
            i=$((i + 1))
          done
          k=$((k + 1))
        done
        while IFS= read -r line || [ -n "$line" ]; do
          printf '%s\n' "$line"
        done < "$specJSONPath" > "$out/spec.json"
      '' ];
    };
in
{
  # One bundle, with buildContainer's arguments.
  buildContainer = { name ? null, ... }@a:
    let
      bundle = removeAttrs a [ "name" ];
      n = if name != null then name
          else if a ? args && isList a.args && a.args != [ ] && isString (head a.args)
          then defaultName a.args else "bundle";
    in
    mkSpec "${n}-bundlefs-spec" { ${n} = bundle; };

  # Many bundles in one spec: { NAME = { args, ... }; ... }.
  bundles = bs:
    if !(isAttrs bs) then fail "bundles" "an attribute set of bundle name to bundle"
    else mkSpec "bundlefs-spec" bs;
}
