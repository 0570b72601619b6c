# nixpkgs' ociTools (pkgs/build-support/oci-tools/default.nix), restated
# here in the same shape so that the tests need no nixpkgs: a function of
# the tools it takes from pkgs, giving { buildContainer }. buildContainer
# writes config.json with writeText from builtins.toJSON of an attribute
# set and joins it with the closure in runCommand. Of `mounts`, it takes
# the argument and uses nothing: config.json lists its own sysMounts
# alone, in lib.mapAttrsToList's order (sorted destinations), with
# `options = null` where a mount has none.
#
# tests/test_config.py evaluates it with stand-ins for lib.mapAttrsToList,
# writeText, runCommand and writeReferencesToFile, and takes config.json's
# text from what runCommand is given (or evaluates nixpkgs' own file, with
# BUNDLEFS_NIXPKGS=/path/to/nixpkgs).
{ lib, writeText, runCommand, writeReferencesToFile }:
{
  buildContainer =
    { args
    , mounts ? { }
    , os ? "linux"
    , arch ? "x86_64"
    , readonly ? false
    }:
    let
      # What every container gets, by destination.
      sysMounts = {
        "/proc" = { type = "proc"; source = "proc"; };
        "/dev" = {
          type = "tmpfs";
          source = "tmpfs";
          options = [ "nosuid" "strictatime" "mode=755" "size=65536k" ];
        };
        "/dev/pts" = {
          type = "devpts";
          source = "devpts";
          options = [ "nosuid" "noexec" "newinstance" "ptmxmode=0666" "mode=755" "gid=5" ];
        };
        "/dev/shm" = {
          type = "tmpfs";
          source = "shm";
          options = [ "nosuid" "noexec" "nodev" "mode=1777" "size=65536k" ];
        };
        "/dev/mqueue" = {
          type = "mqueue";
          source = "mqueue";
          options = [ "nosuid" "noexec" "nodev" ];
        };
        "/sys" = {
          type = "sysfs";
          source = "sysfs";
          options = [ "nosuid" "noexec" "nodev" "ro" ];
        };
        "/sys/fs/cgroup" = {
          type = "cgroup";
          source = "cgroup";
          options = [ "nosuid" "noexec" "nodev" "relatime" "ro" ];
        };
      };

      config = writeText "config.json" (builtins.toJSON {
        ociVersion = "1.0.0";
        platform = { inherit os arch; };
        linux.namespaces = map (type: { inherit type; }) [ "pid" "network" "mount" "ipc" "uts" ];
        root = { path = "rootfs"; inherit readonly; };
        process = {
          inherit args;
          user = { uid = 0; gid = 0; };
          cwd = "/";
        };
        # (sysMounts only: `mounts` goes nowhere.)
        mounts = lib.mapAttrsToList
          (destination: { type, source, options ? null }: {
            inherit destination type source options;
          })
          sysMounts;
      });
    in
    runCommand "join" { } ''
      set -o pipefail
      mkdir -p $out/rootfs/{dev,proc,sys}
      cp ${config} $out/config.json
      xargs tar c < ${writeReferencesToFile args} | tar -xC $out/rootfs/
    '';
}
