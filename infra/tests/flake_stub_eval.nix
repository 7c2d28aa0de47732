# Evaluates flake.nix's outputs with stub inputs (no download, no store): every package is
# its own name, mkShell returns its arguments. infra/tests/test_flake.py checks the result.
let
  flake = import ../../flake.nix;
  names = [ "python311" "poetry" "postgresql_16" "seaweedfs" "opentofu" "checkov" "hadolint"
            "google-cloud-sdk" "kubectl" "kubernetes-helm" "gnumake" "git" ];
  stubPkgs = builtins.listToAttrs (map (n: { name = n; value = n; }) names) // {
    mkShell = args: args;
  };
  stubNixpkgs = {
    legacyPackages = {
      x86_64-linux = stubPkgs;
      aarch64-linux = stubPkgs;
      x86_64-darwin = stubPkgs;
      aarch64-darwin = stubPkgs;
    };
  };
  outputs = flake.outputs { self = outputs; nixpkgs = stubNixpkgs; };
in {
  inputs = builtins.attrNames flake.inputs;
  systems = builtins.attrNames outputs.devShells;
  packages = outputs.devShells.x86_64-linux.default.packages;
  shellHook = outputs.devShells.x86_64-linux.default.shellHook;
}
