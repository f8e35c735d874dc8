"""The exercises of the book (see README.md in this folder): one stub per file for you to write,
the reference solutions in solutions/, and the grader, grading.py, which both
`python -m pytest --exercises` and the chapters' in-place check (check.py) run."""
