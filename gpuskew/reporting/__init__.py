"""Reports: metrics over the history, charts and self-contained HTML pages."""
