"""From detections to cells: linking into tracks with divisions (``tracker``), then phases and durations (``resolve``)."""
