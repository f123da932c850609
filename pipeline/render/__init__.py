"""Stage 5, render: chart specs, Jinja pages and the archive pages (Markdown for MkDocs)."""
