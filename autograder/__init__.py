"""The instructor's side of the kit, one entry point (``python -m autograder``, :mod:`autograder.cli`)
and three stages, each a package:

- :mod:`autograder.authoring`: assignment sources (``authoring/assignments/*.py``) become the
  solution and student notebooks, the published student repository, the solution figures, and
  the validation that every solution passes and every release fails.
- :mod:`autograder.engine`: grading one folder of untrusted notebooks: parallel nbgrader
  workers, pre-warmed kernels in a bubblewrap sandbox, hidden checks in a separate trusted
  process (``engine/checks/``), safe copying of submissions and of what comes back.
- :mod:`autograder.course`: the term around grading: an nbgrader course folder, collection from
  the exchange and LMS downloads, the gradebook, the grading guide, feedback, LMS exports,
  Gradescope and the offline demo.
"""
