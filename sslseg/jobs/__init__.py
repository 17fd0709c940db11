"""Engine jobs run out of process: start ``python -m sslseg COMMAND ...`` as a worker, follow its JSON-lines events,
cancel its whole process tree, and turn its exit into done / failed / cancelled.

Standard library only (no Qt, no slicer): the Slicer modules drive a :class:`~sslseg.jobs.runner.Job` from a Qt timer
(:meth:`~sslseg.jobs.runner.Job.poll`), scripts and tests call :meth:`~sslseg.jobs.runner.Job.wait`.
"""

from sslseg.jobs.runner import Job, JobFailed, worker_command
from sslseg.jobs.states import JobState

__all__ = ["Job", "JobFailed", "JobState", "worker_command"]
