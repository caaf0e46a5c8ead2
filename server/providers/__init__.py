"""Upstream providers. Each is one package here exposing `PROVIDER` (a ProviderSpec);
the registry finds them by walking this package, so adding a provider changes
nothing else."""
