"""One module per ``liqmap`` subcommand: ``configure(parser)`` and ``run(args) -> int``."""


def load_registry(path=None):
    """The asset registry, or None after printing its error (file, asset, field) to stderr."""
    import sys

    from pipeline import registry

    try:
        return registry.load(path) if path is not None else registry.load()
    except registry.RegistryError as exc:
        print(exc, file=sys.stderr)
        return None
