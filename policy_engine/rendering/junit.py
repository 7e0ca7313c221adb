"""JUnit XML for CI systems: ``check`` diagnostics and ``test`` cases.

Callers: the CLI (``-o junit``). Builds XML with ElementTree; never computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree as ET

from policy_engine.errors import Diagnostic, Severity


def check_report(files: Sequence[str], diagnostics: Sequence[Diagnostic]) -> str:
    suites = ET.Element("testsuites", name="tidegate check")
    for file in files:
        found = [
            d
            for d in diagnostics
            if d.location and d.location.file == file and d.severity is Severity.ERROR
        ]
        suite = ET.SubElement(
            suites, "testsuite", name=file, tests="1", failures="0", errors=str(min(len(found), 1))
        )
        case = ET.SubElement(suite, "testcase", name="check", classname=file, file=file)
        if found:
            error = ET.SubElement(case, "error", message=found[0].message, type=found[0].code)
            error.text = "\n".join(f"{d.location}: [{d.code}] {d.message}" for d in found)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
