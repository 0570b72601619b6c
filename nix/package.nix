# A nixpkgs-style package expression for bundlefs itself:
#   pkgs.callPackage ./nix/package.nix { }
# It needs nixpkgs, which the test machines do not have, so it is not
# evaluated by the tests; nix/bundlefs.nix is the part they exercise.
# nixpkgs' fuse3 (3.16 or later) has passthrough; build-deps/ is not used.
{ lib, stdenv, cmake, pkg-config, scdoc, fuse3, cjson, xxHash, sqlite, curl, openssl }:

stdenv.mkDerivation {
  pname = "bundlefs";
  version = "0.1.0";
  src = lib.cleanSource ../.;

  nativeBuildInputs = [ cmake pkg-config scdoc ];
  buildInputs = [ fuse3 cjson xxHash sqlite curl openssl ];
  # libcurl and libcrypto are loaded on first use (dlopen), by the absolute
  # paths the build finds them at: no RUNPATH would hold them, and so they
  # are kept as runtime dependencies.
  cmakeFlags = [ "-DBUILD_TESTING=OFF" "-DBUNDLEFS_SYSTEM_LIBFUSE=ON"
                 "-DBUNDLEFS_DLOPEN_PATHS=ON" ];

  meta = {
    description = "Copy-free OCI runtime bundles served from the Nix store over FUSE";
    platforms = lib.platforms.linux;
    mainProgram = "bundlefs";
  };
}
