"""The instructor's nbgrader course: one folder per term, from collection to grades.

- ``nbgrader_config.py`` (this package): the kit's nbgrader settings, loaded by every course's own
  ``nbgrader_config.py`` (and by the grader's temporary courses).
- :mod:`~autograder.course.folder`: what a course folder holds and how to open its gradebook.
- :mod:`~autograder.course.init`: ``python -m autograder course init PATH``.
- :mod:`~autograder.course.roster`: the student list (nbgrader's CSV) and matching files to students.
- :mod:`~autograder.course.collect`: submissions from the exchange, folders, zips, Canvas, Moodle, Colab.
- :mod:`~autograder.course.autograde`: ``grade --course``: parallel, sandboxed, incremental.
- :mod:`~autograder.course.gradebook`: one notebook's results merged into the course gradebook.
- :mod:`~autograder.course.feedback`, :mod:`~autograder.course.export`, :mod:`~autograder.course.guide`.
- :mod:`~autograder.course.gradescope`: the same grading as a Gradescope autograder zip.
- :mod:`~autograder.course.demo` (``make demo``) and :mod:`~autograder.course.demo_term`: the whole
  cycle offline, on demo students.
"""
