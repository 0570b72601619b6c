# A nixpkgs-style package expression for bundlefs itself:
#   pkgs.callPackage ./nix/package.nix { }
# It works from a checkout (nix/package.nix: the source is the tree it is
# in) and from where `cmake --install` puts it (share/bundlefs/package.nix:
# the source is the copy installed beside it, share/bundlefs/src); the
# two take the same files, so they build the same. `src` overrides both.
# nixpkgs' fuse3 (3.16 or later) has passthrough; build-deps/ is not used.
{ lib, stdenv, cmake, pkg-config, scdoc, makeWrapper, fuse3, cjson, xxHash, sqlite, curl
, openssl, nix, util-linux
, src ? null
}:

let
  # What the build takes of the tree: the same list as CMakeLists.txt's
  # install of share/bundlefs/src (the tests compare the two). Not the
  # tests, and not a build directory or a result link a checkout may hold.
  sourceEntries = [ "CMakeLists.txt" "README.md" "common" "contrib" "docs" "fs" "nix" "tools" ];
  tree = root: lib.cleanSourceWith {
    name = "bundlefs-source";
    src = root;
    filter = path: type:
      let
        rel = lib.removePrefix "${toString root}/" (toString path);
        top = builtins.head (builtins.split "/" rel);
      in
      builtins.elem top sourceEntries;
  };
  installed = builtins.pathExists ./src/CMakeLists.txt;
  checkout = builtins.pathExists ../CMakeLists.txt && builtins.pathExists ../nix/package.nix;
  source =
    if src != null then src
    else if installed then tree ./src
    else if checkout then tree ../.
    else throw ("bundlefs package.nix: no source beside it (neither ./src, where cmake --install "
      + "puts it, nor a checkout around it); pass one: callPackage ./package.nix { src = ...; }");

  # What bundlefs runs: nix-store and nix (store paths not here yet),
  # fusermount3 (unmounting as a user), mount and umount (writable and
  # kernel-native roots). They come after the PATH it is started with, so
  # that NixOS's setuid fusermount3 (/run/wrappers/bin) is found first.
  runtimePath = lib.makeBinPath [ nix fuse3 util-linux ];
in
stdenv.mkDerivation {
  pname = "bundlefs";
  version = "0.1.0";
  src = source;

  nativeBuildInputs = [ cmake pkg-config scdoc makeWrapper ];
  buildInputs = [ fuse3 cjson xxHash sqlite curl openssl ];
  # libcurl and libcrypto are loaded on first use (dlopen), by the absolute
  # paths the build finds them at: no RUNPATH would hold them, and so they
  # are kept as runtime dependencies.
  cmakeFlags = [ "-DBUILD_TESTING=OFF" "-DBUNDLEFS_SYSTEM_LIBFUSE=ON"
                 "-DBUNDLEFS_DLOPEN_PATHS=ON" ];

  inherit runtimePath;
  postFixup = ''
    for prog in "$out/bin/bundlefs" "$out/bin/bundlectl"; do
      wrapProgram "$prog" --suffix PATH : "${runtimePath}"
    done
  '';

  meta = {
    description = "Copy-free OCI runtime bundles served from the Nix store over FUSE";
    platforms = lib.platforms.linux;
    mainProgram = "bundlefs";
  };
}
