# Evaluates flake.nix's outputs with stub inputs (no download, no store): every package is
# its own name, mkShell returns its arguments. infra/tests/test_flake.py checks the result.
let
  flake = import ../../flake.nix;
  names = [ "python311" "poetry" "postgresql_16" "seaweedfs" "opentofu" "checkov" "hadolint"
            "google-cloud-sdk" "kubectl" "kubernetes-helm" "gnumake" "git" "zlib" ];
  lib = {
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    makeLibraryPath = packages: builtins.concatStringsSep ":" (map (p: "${p}/lib") packages);
  };
  stubPkgs = builtins.listToAttrs (map (n: { name = n; value = n; }) names) // {
    inherit lib;
    mkShell = args: args;
    stdenv.cc.cc.lib = "libstdcxx";
  };
  stubNixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ]
      (system: stubPkgs);
  };
  outputs = flake.outputs { self = outputs; nixpkgs = stubNixpkgs; };
in {
  inputs = builtins.attrNames flake.inputs;
  nixpkgs = flake.inputs.nixpkgs.url;
  systems = builtins.attrNames outputs.devShells;
  packages = outputs.devShells.x86_64-linux.default.packages;
  shellHook = outputs.devShells.x86_64-linux.default.shellHook;
  ldLibraryPath = outputs.devShells.x86_64-linux.default.env.LD_LIBRARY_PATH;
  outputNames = builtins.attrNames outputs;
}
