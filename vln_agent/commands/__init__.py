"""One module per ``clipvil`` subcommand.

Each module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``configure(parser)``
(its arguments) and ``run(args) -> int`` (the exit status). Modules import only the
standard library and light project modules at the top; heavy imports (torch, open_clip)
happen inside ``run`` so that ``clipvil --help`` and the environment commands stay fast.
"""
