# bundlefs's Nix front door: nixpkgs' ociTools.buildContainer interface,
# written with Nix builtins only (no nixpkgs), for bundlefs. See docs/nix.md.
#
#   let bfs = import ./nix/bundlefs.nix { }; in
#   bfs.buildContainer { args = [ "${hello}/bin/hello" ]; }
#   bfs.bundles { hello = { args = [ ... ]; }; web = { args = [ ... ]; readonly = true; }; }
#
# Each builds the spec bundlefs mounts as one file (`nix-build -o result`,
# then `bundlefs /mnt/bundles result`), and beside it one file per bundle
# listing its closure, written at build time from exportReferencesGraph:
# the closure is known without Nix's database, nothing of it is copied, and
# the spec refers to every closure file, which refers to every path of its
# closure, so a GC root on the spec (nix-build -o) keeps them all alive.
# Every output is a single file because the builder is /bin/sh with its
# builtins alone: NixOS's sandbox shell (busybox with only `sh`) has no
# mkdir.
#
# A bundle's keys, their types and rules come from keys.json beside this
# file, which the C spec checker takes its rules from too: every key of every
# bundle is checked here, at evaluation, and a mistake stops it with
#   bundlefs.nix: bundle `NAME': KEY: what is wrong
# (all of a spec's mistakes, one per line). `oci` (a JSON merge patch over
# the generated config.json) is only known to be an attribute set here:
# whether the result is valid OCI is bundlefs's to say, which it does in
# the build when `bundlefs` (the package) is given.
{ system ? builtins.currentSystem
  # The bundlefs package (or its prefix, as a string): when given, the
  # build checks the spec with its bundlectl, which knows what Nix cannot
  # (the runtime-spec schema an `oci` patch must keep to).
, bundlefs ? null
}:
let
  inherit (builtins) all any attrNames concatLists concatStringsSep elem elemAt filter
    fromJSON genList groupBy hasContext head isAttrs isBool isInt isList isString length
    listToAttrs match pathExists readFile replaceStrings split stringLength substring tail
    typeOf;

  storeDir = builtins.storeDir;
  keysFile = fromJSON (readFile ./keys.json);
  keys = keysFile.keys;
  keyNames = map (k: k.name) keys;

  # ---- messages ----------------------------------------------------------

  quote = s: "`${s}'";
  describe = v: if isAttrs v && v ? outPath then "a derivation" else {
    string = "a string"; int = "an integer"; float = "a number with a fraction";
    bool = "a boolean"; null = "null"; list = "a list"; set = "an attribute set";
    lambda = "a function"; path = "a path"; primop = "a function"; primop-app = "a function";
  }.${typeOf v} or (typeOf v);
  # A value as a message shows it: strings quoted, others by their type.
  show = v: if isString v then quote v else describe v;
  orList = l:
    if length l < 2 then concatStringsSep "" l
    else "${concatStringsSep ", " (genList (i: elemAt l i) (length l - 1))} or ${elemAt l (length l - 1)}";
  # The first non-null of a list of messages, or null.
  first = l: let m = filter (x: x != null) l; in if m == [ ] then null else head m;
  # The first problem of the items of a list: `f item` is null or a message.
  firstOf = f: l: first (map f l);
  indexed = l: genList (i: { i = i + 1; v = elemAt l i; }) (length l);

  # ---- store paths -------------------------------------------------------

  hashRe = "[0-9a-df-np-sv-z]{32}";
  nameRe = "[-+_?=0-9A-Za-z][-+._?=0-9A-Za-z]*";
  # (Nix's regular expressions are std::regex's POSIX extended ones, which
  # refuse \] and \}: outside brackets, ] and } are themselves anyway.)
  escapeRe = replaceStrings
    [ "\\" "." "+" "*" "?" "(" ")" "[" "{" "|" "^" "$" ]
    [ "\\\\" "\\." "\\+" "\\*" "\\?" "\\(" "\\)" "\\[" "\\{" "\\|" "\\^" "\\$" ];
  # "<hash>-<name>", as Nix (and bundlefs) takes a store path's base name.
  validBase = b: match "${hashRe}-${nameRe}" b != null && stringLength b <= 32 + 1 + 211;
  inStoreDir = p: p == storeDir || substring 0 (stringLength storeDir + 1) p == "${storeDir}/";
  afterStoreDir = p: substring (stringLength storeDir + 1) (-1) p;
  isStorePath = p: inStoreDir p && p != storeDir && validBase (afterStoreDir p);
  # The store path a path inside one belongs to, or null.
  storePathOf = p:
    let base = head (filter isString (split "/" (afterStoreDir p))); in
    if inStoreDir p && p != storeDir && validBase base then "${storeDir}/${base}" else null;

  # The store paths a string names, each with the string's context (which
  # substring keeps and split does not), so that a derivation's output
  # named in it is an input of the build whether or not it is built yet.
  storePathsIn = s:
    let
      parts = split "(${escapeRe storeDir}/${hashRe}-${nameRe})" s;
      step = acc: part:
        if isString part then acc // { at = acc.at + stringLength part; }
        else let n = stringLength (head part); in
          { at = acc.at + n; found = acc.found ++ [ (substring acc.at n s) ]; };
    in
    (builtins.foldl' step { at = 0; found = [ ]; } parts).found;

  # A store path without context (a plain string) must be in the store
  # now: its references are exported through builtins.storePath, which
  # would fail with a message naming neither bundle nor key. One with
  # context is a derivation's output (or a source) that Nix builds first;
  # looking at it here would build it during evaluation.
  missing = p: !(hasContext p) && !(pathExists p);
  asInput = p: if hasContext p then p else builtins.storePath p;

  # ---- paths in the container --------------------------------------------

  components = p: tail (filter isString (split "/" p));
  # Absolute and normalized, as bundlefs wants a mount destination or a
  # cwd: the entry the rootfs gets is the one config.json names.
  rootPathProblem = p:
    if substring 0 1 p != "/" then "${quote p} is not an absolute path"
    else if stringLength p >= 4096 then "${quote (substring 0 60 p)}... is longer than 4095 bytes"
    else if p == "/" then null
    else if any (c: c == "" || c == "." || c == "..") (components p) then
      "${quote p} is not normalized (empty, . or .. component, or trailing /)"
    else if any (c: stringLength c > 255) (components p) then
      "${quote p} has a component longer than 255 bytes"
    else null;

  # ---- the types of keys.json --------------------------------------------

  # A derivation where a string is wanted stands for its output path.
  coerce = v: if isAttrs v && v ? outPath then "${v}" else v;
  types = {
    string = {
      norm = coerce;
      problem = v: if isString v then null else "expected a string, not ${describe v}";
    };
    strings = {
      norm = v: if isList v then map coerce v else v;
      problem = v:
        if !(isList v) then "expected a list of strings, not ${describe v}"
        else firstOf (x: if isString x.v then null else "item ${toString x.i} is ${describe x.v}, not a string")
          (indexed v);
    };
    bool = {
      norm = v: v;
      problem = v: if isBool v then null else "expected true or false, not ${show v}";
    };
    object = {
      norm = v: v;
      problem = v: if isAttrs v && !(v ? outPath) then null else "expected an attribute set, not ${describe v}";
    };
    mounts = {
      norm = v: v;
      problem = v:
        if isAttrs v && !(v ? outPath) then null
        else "expected an attribute set of destination to { type, source, options }, not ${describe v}";
    };
  };

  # ---- the checks of keys.json -------------------------------------------

  # Each takes the key's entry of keys.json and a value of the key's type,
  # and gives null or what is wrong with the value.

  wordProblem = what: v:
    if match "[^[:space:][:cntrl:]]*" v == null then
      "${what}${quote v} contains whitespace or control characters"
    else null;

  storePathProblem = p:
    if !(isStorePath p) then "${quote p} is not a store path (${storeDir}/<32-char hash>-<name>)"
    else if missing p then "${quote p} is not in the store"
    else null;

  # Linux's names, from keys.json (the C checker's too).
  capabilityNames = keysFile.names.capabilities;
  rlimitNames = keysFile.names.rlimits;

  # UID or GID: a decimal number up to 2^32 - 2 ((uid_t) -1 means none).
  idOk = s:
    let d = head (match "0*([0-9]+)" s); in
    stringLength d < 10 || (stringLength d == 10 && d <= "4294967294");

  mountProblem = dest: m:
    let
      at = "${quote dest}: ";
      unknown = filter (a: !(elem a [ "type" "source" "options" ])) (attrNames m);
      opts = m.options or null;
    in
    if dest == "/" then "${at}a mount destination may not be /"
    else if rootPathProblem dest != null then "${at}${rootPathProblem dest}"
    else if inStoreDir dest then "${at}is inside the store directory ${storeDir}"
    else if substring 0 (stringLength dest + 1) storeDir == "${dest}/" then
      "${at}covers the store directory ${storeDir}, which holds the closure"
    else if !(isAttrs m) then "${at}expected { type, source, options }, not ${describe m}"
    else if unknown != [ ] then "${at}unknown attribute ${quote (head unknown)} (known: type, source, options)"
    else if !(m ? type) then "${at}type is required (bind, tmpfs, proc...)"
    else if !(isString m.type) then "${at}type: expected a string, not ${describe m.type}"
    else if m.type == "" then "${at}type may not be empty"
    else if wordProblem "" m.type != null then "${at}type ${wordProblem "" m.type}"
    else if !(m ? source) then "${at}source is required"
    else if !(isString (coerce m.source)) then "${at}source: expected a string, not ${describe m.source}"
    else if coerce m.source == "" then "${at}source may not be empty"
    else if opts == null then null
    else if !(isList opts) then "${at}options: expected null or a list of strings, not ${describe opts}"
    else firstOf (o:
      if !(isString o.v) then "${at}options: item ${toString o.i} is ${describe o.v}, not a string"
      else if o.v == "" then "${at}options: an empty option"
      else if match ".*,.*" o.v != null then "${at}options: ${quote o.v} contains a comma (one option per item)"
      else null) (indexed opts);

  checks = {
    none = k: v: null;

    word = k: v: wordProblem "" v;

    args = k: v:
      let prog = head v; in
      if v == [ ] then "expected the program and its arguments, not an empty list"
      else if prog == "" then "the program (its first word) is empty"
      # (A program outside the store is bundlefs's to accept too: a mount
      # may provide it, or the container's PATH find it.)
      else firstOf (p: if missing p then "${quote p} is not in the store" else null)
        (concatLists (map storePathsIn v));

    file = k: v: if substring 0 1 v == "/" then null else "expected one absolute file name, not ${quote v}";

    store-paths = k: v: firstOf storePathProblem v;

    enum = k: v: if elem v k.values then null else "expected ${orList k.values}, not ${quote v}";

    env = k: v:
      let
        nameOf = e: head (filter isString (split "=" e));
        bad = filter (e: length (split "=" e) < 3 || match "[A-Za-z_][A-Za-z0-9_]*" (nameOf e) == null) v;
        names = map nameOf v;
        groups = groupBy (n: n) names;
        twice = filter (n: length groups.${n} > 1) names;
      in
      if bad != [ ] then
        "expected NAME=VALUE (NAME of letters, digits and _, not starting with a digit), not ${quote (head bad)}"
      else if twice != [ ] then "${head twice} is set twice"
      else null;

    cwd = k: v:
      if rootPathProblem v != null then rootPathProblem v
      else if inStoreDir v && v != storeDir && storePathOf v == null then
        "${quote v} is in the store directory ${storeDir} but not in a store path: there the rootfs holds only the closure"
      else null;

    hostname = k: v:
      if v == "" || stringLength v > 64 then "expected 1 to 64 characters, not ${quote v}"
      else if match "[-.A-Za-z0-9]*" v == null then "expected letters, digits, '-' and '.', not ${quote v}"
      else if match "[-.].*" v != null then "may not start with '-' or '.': ${quote v}"
      else null;

    user = k: v:
      let m = match "([0-9]+):([0-9]+)((,[0-9]+)*)" v; in
      if m == null || !(all idOk ([ (elemAt m 0) (elemAt m 1) ] ++ filter (s: s != "") (filter isString (split "," (toString (elemAt m 2))))))
      then "expected UID:GID or UID:GID,GID,... (numbers up to 4294967294), not ${quote v}"
      else null;

    mounts = k: v: first (map (d: mountProblem d v.${d}) (attrNames v));

    capabilities = k: v:
      let
        unknown = filter (a: !(elem a [ "add" "drop" ])) (attrNames v);
        listProblem = a: l:
          if !(isList l) then "${a}: expected a list of capability names, not ${describe l}"
          else firstOf (c:
            if !(isString c.v) then "${a}: item ${toString c.i} is ${describe c.v}, not a string"
            else if !(elem c.v capabilityNames) && c.v != "ALL" then
              "${a}: ${quote c.v} is not a Linux capability (CAP_CHOWN ... CAP_CHECKPOINT_RESTORE) nor ALL"
            else null) (indexed l);
      in
      if unknown != [ ] then "unknown attribute ${quote (head unknown)} (known: add, drop)"
      else first (map (a: if v ? ${a} then listProblem a v.${a} else null) [ "add" "drop" ]);

    rlimits = k: v:
      let
        n = x: isInt x && x >= 0;
        limitProblem = r: l:
          if !(elem r rlimitNames) then
            "${quote r} is not a Linux resource limit (${concatStringsSep ", " rlimitNames})"
          else if n l then null
          else if !(isAttrs l) then
            "${r}: expected a number (0 or more) or { soft; hard; }, not ${show l}"
          else if attrNames l != [ "hard" "soft" ] then
            "${r}: expected { soft; hard; } and nothing else, not { ${concatStringsSep "; " (attrNames l)}; }"
          else if !(n l.soft) || !(n l.hard) then
            "${r}: soft and hard are numbers, 0 or more (soft is ${show l.soft}, hard ${show l.hard})"
          else if l.soft > l.hard then
            "${r}: soft (${toString l.soft}) is above hard (${toString l.hard})"
          else null;
      in
      first (map (r: limitProblem r v.${r}) (attrNames v));

    string-map = k: v:
      first (map (a: if isString v.${a} then null else "${quote a}: expected a string, not ${describe v.${a}}")
        (attrNames v));

    sysctl = k: v:
      first (map (a:
        if match "[a-z0-9_./-]+" a == null then
          "${quote a} is not a sysctl name (a-z 0-9 _ . / -)"
        else if any (c: c == "") (filter isString (split "[./]" a)) then
          "${quote a} is not a sysctl name (an empty component)"
        else if !(isString v.${a}) then "${quote a}: expected a string, not ${describe v.${a}}"
        else null) (attrNames v));

    abs-paths = k: v: firstOf rootPathProblem v;

    # A JSON merge patch (RFC 7396) over config.json: its shape is the
    # runtime-spec schema's, which bundlefs checks the result against.
    oci = k: v: null;
  };

  # keys.json names what each key is and how it is checked; each type and
  # check it names must be implemented above, so that the two cannot drift
  # apart in silence: evaluating anything fails until they are.
  tableProblems = concatLists (map (k:
    (if types ? ${k.type} then [ ] else [ "key ${quote k.name}: no type named ${quote k.type} here" ])
    ++ (if checks ? ${k.check} then [ ] else [ "key ${quote k.name}: no check named ${quote k.check} here" ])
    ++ (if k.check == "enum" && !(isList (k.values or null)) then [ "key ${quote k.name}: an enum without values" ] else [ ]))
    keys);
  table =
    if tableProblems != [ ] then
      throw ("bundlefs.nix: keys.json does not match bundlefs.nix:\n"
        + concatStringsSep "\n" (map (p: "bundlefs.nix: keys.json: ${p}") tableProblems))
    else listToAttrs (map (k: { name = k.name; value = k; }) keys);

  # ---- bundles -----------------------------------------------------------

  # Bundle names, as bundlefs takes them.
  nameProblem = n:
    if match "[A-Za-z0-9._+-]+" n == null || n == "." || n == ".." || stringLength n > 255 then
      "a bundle name is 1 to 255 of A-Z a-z 0-9 . _ + - (not . or ..)"
    else if n == ".bundlefs" then "the name .bundlefs is reserved (the mount keeps the bundles' versions there)"
    else null;

  # What is wrong with bundle `n' (b), as a list of messages.
  bundleProblems = n: b:
    let
      at = "bundle ${quote n}";
      keyProblem = k: v:
        let t = types.${k.type}; v' = t.norm v; in
        if t.problem v' != null then t.problem v' else checks.${k.check} k v';
    in
    if nameProblem n != null then [ "${at}: ${nameProblem n}" ]
    else if !(isAttrs b) || b ? outPath then [ "${at}: a bundle is an attribute set of keys, not ${describe b}" ]
    else
      map (k: "${at}: ${k}: unknown key (known: ${concatStringsSep ", " keyNames})")
        (filter (k: !(table ? ${k})) (attrNames b))
      ++ map (k: "${at}: ${k.name}: required: ${k.doc}")
        (filter (k: (k.required or false) && !(b ? ${k.name})) keys)
      ++ concatLists (map (k:
        if b ? ${k.name} then
          let p = keyProblem k b.${k.name}; in if p == null then [ ] else [ "${at}: ${k.name}: ${p}" ]
        else [ ]) keys);

  problemsOf = bs:
    if !(isAttrs bs) || bs ? outPath then [ "bundles: an attribute set of bundle name to bundle, not ${describe bs}" ]
    else if bs == { } then [ "bundles: no bundle given" ]
    else concatLists (map (n: bundleProblems n bs.${n}) (attrNames bs));

  # The bundle as the spec has it: its values as they were checked.
  normalize = b: listToAttrs (map (n: { name = n; value = types.${table.${n}.type}.norm b.${n}; }) (attrNames b));

  # A name for a store path made for bundle `n' (store names are at most
  # 211 bytes and may not start with a period).
  storeName = n: suffix:
    if stringLength n + stringLength suffix <= 211 && substring 0 1 n != "." then "${n}${suffix}"
    else "bundle${suffix}";

  # The closure of a bundle's roots, one store path per line: the graph
  # files list each path, its deriver, the number of its references and
  # those. Written with the shell's builtins alone, into $out itself.
  closureFile = n: roots:
    builtins.derivation {
      name = storeName n "-closure";
      inherit system;
      builder = "/bin/sh";
      graphs = length roots;
      exportReferencesGraph = concatLists (genList (i: [ "graph-${toString i}" (asInput (elemAt roots i)) ])
        (length roots));
      args = [ "-ec" ''
        : > "$out"
        i=0
        while [ "$i" -lt "$graphs" ]; do
          while read -r path; do
            read -r deriver
            read -r n
            printf '%s\n' "$path" >> "$out"
            while [ "$n" -gt 0 ]; do read -r ref; n=$((n - 1)); done
          done < "graph-$i"
          i=$((i + 1))
        done
      '' ];
    };

  mkSpec = drvName: bs:
    let
      ps = problemsOf bs;
      names = attrNames bs;
      # A bundle's roots: the store paths in its args and paths. One that
      # names its own closure file keeps it.
      rootsOf = b: concatLists (map storePathsIn (b.args ++ (b.paths or [ ])));
      spec = listToAttrs (map (n:
        let b = normalize bs.${n}; in {
          name = n;
          value = if b ? closure then b else b // { closure = "${closureFile n (rootsOf b)}"; };
        }) names);
    in
    if ps != [ ] then throw (concatStringsSep "\nbundlefs.nix: " ([ "bundlefs.nix: ${head ps}" ] ++ tail ps))
    else builtins.derivation {
      name = drvName;
      inherit system;
      builder = "/bin/sh";
      specJSON = builtins.toJSON spec;
      passAsFile = [ "specJSON" ];
      bundleNames = names;
      bundlectl = if bundlefs == null then "" else "${bundlefs}/bin/bundlectl";
      storeDir = storeDir;
      # toJSON writes one line: read back whole and written out, with a
      # newline at its end.
      args = [ "-ec" ''
        IFS= read -r line < "$specJSONPath" || [ -n "$line" ]
        printf '%s\n' "$line" > "$out"
        if [ -n "$bundlectl" ]; then
          for name in $bundleNames; do
            "$bundlectl" config --store-dir "$storeDir" --db none "$out" "$name" > /dev/null
          done
        fi
      '' ];
    };

  # buildContainer's default name: the command's file name, as a bundle name.
  defaultName = args:
    let
      parts = filter isString (split "/" (head args));
      last = elemAt parts (length parts - 1);
      clean = concatStringsSep "" (map (c: if match "[A-Za-z0-9._+-]" c != null then c else "-")
        (genList (i: substring i 1 last) (stringLength last)));
    in
    if nameProblem clean == null then clean else "bundle";
in
{
  # One bundle, with buildContainer's arguments and bundlefs's keys, and an
  # optional name (default: the command's file name).
  buildContainer = { name ? null, ... }@a:
    let
      bundle = removeAttrs a [ "name" ];
      args = a.args or [ ];
      n = if name != null then name
          else if isList args && args != [ ] && isString (coerce (head args)) then defaultName [ (coerce (head args)) ]
          else "bundle";
    in
    if !(isString n) then throw "bundlefs.nix: buildContainer: name: expected a string, not ${describe n}"
    else builtins.seq table (mkSpec (storeName n "-bundlefs-spec.json") { ${n} = bundle; });

  # Many bundles in one spec: { NAME = { args, ... }; ... }.
  bundles = bs: builtins.seq table (mkSpec "bundlefs-spec.json" bs);

  # What is wrong with such an attribute set of bundles: a list of
  # messages (`bundle `NAME': KEY: ...`), empty when nothing is. For
  # checks of one's own (a NixOS module's assertions).
  problems = bs: builtins.seq table (problemsOf bs);

  # keys.json, as Nix values.
  keys = builtins.seq table keys;
}
