"""From label images to cells: nuclei measured (``detections``), tracks with divisions (``tracker``), then phases
and durations (``resolve``, with the second looks at each nucleus of ``evidence``)."""
