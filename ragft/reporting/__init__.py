"""The experiment's results for people: one report model (``model``) built by the evaluate stage,
rendered by two templates (``render``: reports/comparison.md and reports/report.html, ``templates/``),
its figures (``plots``), and what `make demo` prints at the end (``summary``)."""
