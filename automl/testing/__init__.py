"""Test support shipped with the package: the contract suites every plugin family runs
(:mod:`automl.testing.contracts`), the small toy plugins they run on (:mod:`automl.testing.toys`)
and pinned golden digests per space (:mod:`automl.testing.golden`).  Imports nothing heavy."""
