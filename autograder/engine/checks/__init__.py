"""Hidden checks, one module per assignment. Grader-only: never released to students.

Each ``check_*`` takes the student's function (and sometimes the notebook's objects), builds
its own inputs, compares with ``solutions`` and raises ``AssertionError`` saying what is wrong,
never what the expected numbers are.
"""
