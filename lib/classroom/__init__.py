"""Classroom assignments on nbgrader: the student pack and the autograder.

The book's exercises in ``book/assignments/`` are one source for three things: the
pages of the book (solutions in dropdowns, hidden tests removed), the student
notebooks handed out (:mod:`lib.classroom.pack`), and the tests that grade what comes
back (:mod:`lib.classroom.grading`). Hidden tests compare a student's function with
the library's reference implementation on fresh random inputs
(:mod:`lib.classroom.checks`). Teachers use ``make student-pack`` and
``make grade SUBMISSIONS=DIR`` (``python -m lib.classroom``).
"""
