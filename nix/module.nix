# A NixOS module: bundlefs mounts as systemd services. See docs/nix.md.
#
#   imports = [ ./bundlefs/nix/module.nix ];
#   services.bundlefs.mounts.web = {
#     mountPoint = "/run/bundles";
#     bundles.hello = { args = [ "${pkgs.hello}/bin/hello" ]; readonly = true; };
#     options = [ "--data" "fuse" ];
#   };
#
# Each mount is a service bundlefs-NAME running the command of the unit
# bundlefs ships (contrib/bundlefs@.service.in), with the same settings:
# they are read from that file, not restated here. Only what the template
# takes from its environment file (the spec, the options) and its
# instance (the mount point) is filled in, and /bin/kill, which NixOS does
# not have, is coreutils' kill.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkIf types;
  inherit (builtins) attrNames attrValues concatLists concatStringsSep elemAt filter foldl'
    head isString length listToAttrs match pathExists readFile replaceStrings split;

  cfg = config.services.bundlefs;

  # The unit template: in a checkout beside nix/, installed in the source
  # copy beside this file (share/bundlefs/src).
  template =
    if pathExists (./src/contrib + "/bundlefs@.service.in") then ./src/contrib + "/bundlefs@.service.in"
    else ../contrib + "/bundlefs@.service.in";

  # The template's settings: { Unit = { Key = [ values ]; }; Service = ...; Install = ...; }.
  unit =
    let
      lines = filter isString (split "\n" (readFile template));
      step = acc: line:
        let
          section = match "[[]([A-Za-z]+)]" line;
          setting = match "([A-Za-z]+)=(.*)" line;
          s = acc.section;
          k = elemAt setting 0;
        in
        if section != null then acc // { section = head section; }
        else if setting == null then acc
        else acc // {
          ${s} = (acc.${s} or { }) // { ${k} = ((acc.${s} or { }).${k} or [ ]) ++ [ (elemAt setting 1) ]; };
        };
    in
    removeAttrs (foldl' step { section = ""; } lines) [ "section" ];
  words = s: filter (w: isString w && w != "") (split "[ \t]+" s);
  setting = section: k: concatStringsSep " " (unit.${section}.${k} or [ ]);

  # systemd's quoting: an argument as one word of a command line, and a
  # value in which % would start a specifier.
  systemdArg = a:
    if match "[A-Za-z0-9_./=:,+@-]+" a != null then a
    else "\"" + replaceStrings [ "\\" "\"" "%" "$" ] [ "\\\\" "\\\"" "%%" "$$" ] a + "\"";
  systemdText = replaceStrings [ "%" ] [ "%%" ];

  # The spec a mount serves: built by bundlefs.nix (and checked by the
  # mount's own bundlectl in the build), or the file it names.
  specOf = m:
    if m.bundles != null then
      (import ./bundlefs.nix { system = pkgs.stdenv.hostPlatform.system; bundlefs = m.package; }).bundles m.bundles
    else m.spec;

  # A command or a text of the template, for mount `name' (m).
  fill = name: m: command: s:
    let
      options = concatStringsSep "" (map (o: " " + systemdArg o) m.options);
      mp = if command then systemdArg m.mountPoint else systemdText m.mountPoint;
    in
    replaceStrings
      [ "@BUNDLEFS_BIN@" " $BUNDLEFS_OPTIONS" "\${BUNDLEFS_SPEC}" "%f" "%i" "/bin/kill " ]
      [ "${m.package}/bin/bundlefs" options (systemdArg "${specOf m}") mp name "${pkgs.coreutils}/bin/kill " ]
      s;

  service = name: m:
    let
      # Settings the module sets itself: the environment file gives the
      # spec and options, which are in the command here.
      unitOwn = [ "Description" "Documentation" "After" "Wants" ];
      serviceOwn = [ "EnvironmentFile" ];
      commands = [ "ExecStart" "ExecStartPre" "ExecStartPost" "ExecReload" "ExecStop" "ExecStopPost" ];
      # (a setting given more than once is a list, a line each)
      values = section: skip: listToAttrs (map (k:
        let v = map (fill name m (builtins.elem k commands)) unit.${section}.${k}; in
        { name = k; value = if length v == 1 then head v else v; })
        (filter (k: !(builtins.elem k skip)) (attrNames (unit.${section} or { }))));
    in
    {
      description = fill name m false (setting "Unit" "Description");
      documentation = words (setting "Unit" "Documentation");
      after = words (setting "Unit" "After");
      wants = words (setting "Unit" "Wants");
      wantedBy = words (setting "Install" "WantedBy");
      unitConfig = values "Unit" unitOwn;
      serviceConfig = values "Service" serviceOwn;
    };

  enabled = lib.filterAttrs (_: m: m.enable) cfg.mounts;

  mountOptions = { name, ... }: {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether to run this mount (service bundlefs-${name}).";
      };
      mountPoint = mkOption {
        type = types.str;
        example = "/run/bundles";
        description = "Where the bundles appear: MOUNTPOINT/NAME/config.json and MOUNTPOINT/NAME/rootfs.";
      };
      bundles = mkOption {
        type = types.nullOr (types.attrsOf types.attrs);
        default = null;
        description = ''
          The bundles, as nix/bundlefs.nix's `bundles` takes them: bundle
          name to { args, readonly, mounts, env, ... } (docs/spec.md). They
          are checked at evaluation, the spec is built into the store, and
          the build checks it with this mount's bundlectl.
        '';
      };
      spec = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "A spec file (spec.conf or JSON) instead of `bundles`.";
      };
      options = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "--watch" "--data" "fuse" ];
        description = "bundlefs's command-line options (bundlefs(1)), before the mount point.";
      };
      package = mkOption {
        type = types.package;
        default = cfg.package;
        description = "The bundlefs this mount runs.";
      };
    };
  };
in
{
  options.services.bundlefs = {
    package = mkOption {
      type = types.package;
      default = pkgs.bundlefs or (pkgs.callPackage ./package.nix { });
      description = "The bundlefs package (nix/package.nix).";
    };
    mounts = mkOption {
      type = types.attrsOf (types.submodule mountOptions);
      default = { };
      description = "bundlefs mounts, each a service bundlefs-NAME.";
    };
  };

  config = mkIf (enabled != { }) {
    assertions = concatLists (map (name:
      let m = enabled.${name}; at = "services.bundlefs.mounts.${name}"; in
      [
        { assertion = (m.bundles == null) != (m.spec == null);
          message = "${at}: set one of bundles and spec"; }
      ] ++ map (p: { assertion = false; message = "${at}.bundles: ${p}"; })
        (if m.bundles == null then [ ]
         else (import ./bundlefs.nix { system = pkgs.stdenv.hostPlatform.system; }).problems m.bundles))
      (attrNames enabled));

    environment.systemPackages = [ cfg.package ]
      ++ filter (p: "${p}" != "${cfg.package}") (map (m: m.package) (attrValues enabled));

    # The unit's ConditionPathIsDirectory wants the mount point there.
    systemd.tmpfiles.rules = map (m: "d ${systemdArg m.mountPoint} 0755 root root - -") (attrValues enabled);

    systemd.services = listToAttrs (map (name: {
      name = "bundlefs-${name}";
      value = service name enabled.${name};
    }) (attrNames enabled));
  };
}
