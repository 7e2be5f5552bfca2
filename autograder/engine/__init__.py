"""The grading engine: untrusted notebooks in, scores out, nothing of the grader within reach.

- :mod:`~autograder.engine.grade`: ``python -m autograder grade DIR``: find submissions, run workers.
- :mod:`~autograder.engine.submissions`, :mod:`~autograder.engine.safe_output`: copy what comes in
  and what goes out without following links, with size caps.
- :mod:`~autograder.engine.nbgrader_worker`: one worker process running ``nbgrader autograde``.
- :mod:`~autograder.engine.prewarmed_kernel`, :mod:`~autograder.engine.sandbox`: kernels forked
  from a zygote that already imported torch, each in its own bubblewrap sandbox. (These two and
  this file are the only engine code inside the sandbox: ``sandbox.KERNEL_CODE``.)
- :mod:`~autograder.engine.check_server`, :mod:`~autograder.engine.checks`: the hidden checks and the
  reference, in a trusted process outside the sandbox; :mod:`~autograder.engine.nbgrader_plugins`
  connects nbgrader's preprocessors to it.
- :mod:`~autograder.engine.grader_files`, :mod:`~autograder.engine.isolated_python`: the code copy
  the workers run from, and the isolated interpreter used to start helpers.
"""
