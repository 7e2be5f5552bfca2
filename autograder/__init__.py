"""The instructor's side of the kit: notebook build, nbgrader course, grading CLI (``python -m autograder``)."""
