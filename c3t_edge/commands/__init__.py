"""One module per ``c3t-edge`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
