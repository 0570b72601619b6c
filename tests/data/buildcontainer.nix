# The config.json of nixpkgs' ociTools.buildContainer (pkgs/build-support/
# oci-tools), restated without nixpkgs so that the tests can have the real
# Nix evaluator produce the expected bytes:
#   writeText "config.json" (builtins.toJSON { ... })
# `mounts` defaults to {} as in buildContainer, where it is accepted and then
# ignored; here it is merged over the system mounts by destination, which is
# what bundlefs does with it. With mounts = {} the result is exactly
# buildContainer's.
{ args, mounts ? {}, os ? "linux", arch ? "x86_64", readonly ? false }:
let
  sysMounts = {
    "/proc" = { type = "proc"; source = "proc"; };
    "/dev" = {
      type = "tmpfs"; source = "tmpfs";
      options = [ "nosuid" "strictatime" "mode=755" "size=65536k" ];
    };
    "/dev/pts" = {
      type = "devpts"; source = "devpts";
      options = [ "nosuid" "noexec" "newinstance" "ptmxmode=0666" "mode=755" "gid=5" ];
    };
    "/dev/shm" = {
      type = "tmpfs"; source = "shm";
      options = [ "nosuid" "noexec" "nodev" "mode=1777" "size=65536k" ];
    };
    "/dev/mqueue" = {
      type = "mqueue"; source = "mqueue";
      options = [ "nosuid" "noexec" "nodev" ];
    };
    "/sys" = {
      type = "sysfs"; source = "sysfs";
      options = [ "nosuid" "noexec" "nodev" "ro" ];
    };
    "/sys/fs/cgroup" = {
      type = "cgroup"; source = "cgroup";
      options = [ "nosuid" "noexec" "nodev" "relatime" "ro" ];
    };
  };
  all = sysMounts // mounts;
  # lib.mapAttrsToList: attribute names in sorted order.
  mountList = map (destination:
    let m = all.${destination}; in {
      inherit destination;
      inherit (m) type source;
      options = m.options or null;
    }) (builtins.attrNames all);
in
builtins.toJSON {
  ociVersion = "1.0.0";
  platform = { inherit os arch; };
  linux = { namespaces = map (type: { inherit type; }) [ "pid" "network" "mount" "ipc" "uts" ]; };
  root = { path = "rootfs"; inherit readonly; };
  process = {
    inherit args;
    user = { uid = 0; gid = 0; };
    cwd = "/";
  };
  mounts = mountList;
}
