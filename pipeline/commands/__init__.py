"""One module per ``liqmap`` subcommand: ``configure(parser)`` and ``run(args) -> int``."""
