"""The dashboard: Jinja2 templates, CSS and server-side SVG charts (see smartsla.web.pages)."""
