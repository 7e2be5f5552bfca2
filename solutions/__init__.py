"""Reference solutions (instructor-only): one small module per explanation method.

Each student function has the same signature as in the notebooks; the body between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what the build copies into the nbgrader
source notebook and what the release replaces with a stub.
"""
