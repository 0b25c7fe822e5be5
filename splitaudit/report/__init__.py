"""The report stage: it renders the result objects it is given (duck-typed; it imports no
orchestrator) as JSON, CSV, one self-contained HTML page and notebook displays.

``ScanResult.save`` / ``AuditResult.save`` and the CLI write through these functions.
"""

from .audit import render_audit_html, render_audit_notebook, write_audit_outputs
from .files import (SCAN_FILES, refuse_inside_root, spreadsheet_safe, write_csv, write_json, write_scan_csvs,
                    write_scan_outputs)
from .html import render_scan_html, render_scan_notebook

__all__ = ["write_scan_outputs", "write_scan_csvs", "write_csv", "spreadsheet_safe", "render_scan_html",
           "render_scan_notebook", "render_audit_html", "render_audit_notebook", "write_audit_outputs",
           "write_json", "refuse_inside_root", "SCAN_FILES"]
