#!/usr/bin/env python3
"""Summarizes the JUnit report(s) the e2e suite wrote (--report-dir/junit_*.xml):
passed/failed/skipped counts (skipped: specs that matched the focus and skipped
themselves, not the ones filtered out), the skipped and failed spec names (with the first line of the
failure). Usage: summary.py REPORT_DIR [LABEL]"""
import glob
import sys
import xml.etree.ElementTree as ET

def main():
    report_dir = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else report_dir
    files = sorted(glob.glob(report_dir + "/junit*.xml"))
    if not files:
        print(f"{label}: no JUnit report in {report_dir}")
        return 2
    passed, skipped, failed = [], [], []
    for f in files:
        for tc in ET.parse(f).getroot().iter("testcase"):
            name = tc.get("name", "")
            # The suite's setup and teardown nodes are reported too; count only specs.
            if name.startswith("[SynchronizedBeforeSuite]") or name.startswith("[SynchronizedAfterSuite]") \
                    or name.startswith("[ReportAfterSuite]") or name.startswith("[BeforeSuite]") \
                    or name.startswith("[AfterSuite]") or name.startswith("[ReportBeforeSuite]"):
                bad = tc.find("failure") is not None or tc.find("error") is not None
                if bad:
                    failed.append((name, first_line(tc)))
                continue
            sk = tc.find("skipped")
            if sk is not None:
                # "skipped" alone: left out by --focus/--skip; anything else: the spec
                # ran and skipped itself (e.g. "Only supported for providers [gce]").
                if sk.get("message", "") != "skipped":
                    skipped.append((name, sk.get("message", "")))
            elif tc.find("failure") is not None or tc.find("error") is not None:
                failed.append((name, first_line(tc)))
            else:
                passed.append(name)
    print(f"{label}: passed {len(passed)}, failed {len(failed)}, skipped {len(skipped)}")
    for name, msg in skipped:
        print(f"  SKIP {name}\n       {msg[:200]}")
    for name, msg in failed:
        print(f"  FAIL {name}\n       {msg}")
    return 1 if failed else 0

def first_line(tc):
    el = tc.find("failure")
    if el is None:
        el = tc.find("error")
    text = (el.get("message") or el.text or "").strip()
    return text.splitlines()[0][:300] if text else ""

if __name__ == "__main__":
    sys.exit(main())
