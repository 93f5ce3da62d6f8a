"""Report: what a study's runs say, as blocks rendered to markdown and HTML, with its figures."""

from .document import Bullets, Figure, Heading, Paragraph, Table, to_html, to_markdown
from .study_report import write_report

__all__ = ["Bullets", "Figure", "Heading", "Paragraph", "Table", "to_html", "to_markdown", "write_report"]
