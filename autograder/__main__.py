"""``python -m autograder COMMAND``: the instructor's command line.

    release [--check]           build notebooks/ and solutions/notebooks/ from autograder/authoring/assignments/
    grade DIR [--out OUT]       autograde DIR/<student>/<assignment>.ipynb (or zips) -> grades.csv + feedback
    validate                    nbgrader validation: solutions pass, releases fail every autograded test
    demo                        release, then grade two demo students offline, print the grade table
    figures [--standin]         execute the solution notebooks, write every figure to solutions/figures/
    gradescope [--with-data]    build the Gradescope autograder zip
"""

from autograder.cli import main

raise SystemExit(main())
