"""The report, along its data flow: runs (run directories → RunRecord) → analysis (curves with bands, attempts to
p, ratios to best-of-k; the statistics in estimators) → conclusions (the verdict in words) → text (table, markdown,
HTML, terminal) and plots (matplotlib) → write (the report folder; `build_report`)."""
