"""Drives an engine :class:`sslseg.jobs.Job` from a Qt timer on the GUI thread, so the panel stays responsive
and the job's callbacks (events, log, import into the scene) run where MRML may be changed."""

import qt

#: How often the worker's output is read (ms).
POLL_MS = 200


class JobDriver:
    """Polls ``job`` every ``POLL_MS`` until it is finished, then calls ``onFinished(job)`` once."""

    def __init__(self, job, onFinished=None) -> None:
        self.job, self.onFinished = job, onFinished
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._poll)

    def start(self) -> "JobDriver":
        self.job.start()
        self.timer.start()
        self._poll()
        return self

    def _poll(self) -> None:
        self.job.poll()
        if self.job.state.finished:
            self.timer.stop()
            if self.onFinished is not None:
                callback, self.onFinished = self.onFinished, None
                callback(self.job)
