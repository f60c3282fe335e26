"""``flowehr doctor``: a preflight that checks everything a run needs and reports it all.

Each check returns findings instead of raising, so one bad source does not hide a
missing secret or an unwritable lake: an operator fixes every problem in one round.
"""

from flowehr_pipelines.doctor.findings import Finding
from flowehr_pipelines.doctor.runner import run_doctor

__all__ = ["Finding", "run_doctor"]
