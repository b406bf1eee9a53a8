"""From detections to cells: tracks with divisions (``tracker``), then phases and durations (``resolve``)."""
