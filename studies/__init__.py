"""Research run sets: scripts that train several runs and record a table (see README.md here).

A package so that the scripts share :mod:`studies.run_set` with the repository root on the
path (``python studies/NAME.py`` puts it there); it is not installed with ``zhbert``.
"""
