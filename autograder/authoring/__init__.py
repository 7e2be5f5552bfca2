"""Authoring: from assignment sources to what students and graders get.

- :mod:`~autograder.authoring.source_format`: the ``# %%`` cell format of ``assignments/*.py``
  (solutions, hidden tests, rubrics) and how one source becomes a notebook.
- :mod:`~autograder.authoring.build`: ``make release``: solution notebooks (``solutions/notebooks``)
  and student notebooks (``notebooks/``) through ``nbgrader generate_assignment``.
- :mod:`~autograder.authoring.publish`: the public student repository (Colab badges, no solutions).
- :mod:`~autograder.authoring.figures`: ``make figures``: every solution figure, for the TAs.
- :mod:`~autograder.authoring.validate`: each solution passes its tests, each release fails them.
"""
