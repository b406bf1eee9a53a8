"""From detections to cells: tracks with divisions (``tracker``), then phases and durations (``resolve``, with the
second looks at each nucleus of ``evidence``)."""
