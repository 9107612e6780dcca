"""Read a patchtrace JUnit report with junitparser (an independent JUnit
reader) and print, per testsuite, its testcases: name, time, result.
The Go test (cmd/patchtrace TestJUnitParser) judges the JSON it prints.

usage: junit_check.py REPORT.xml
"""
import json
import sys

from junitparser import Error, Failure, JUnitXml


def main():
    xml = JUnitXml.fromfile(sys.argv[1])
    suites = []
    for suite in xml:
        cases = []
        for case in suite:
            kinds = [type(r).__name__ for r in case.result]
            cases.append({
                "name": case.name,
                "classname": case.classname,
                "time": case.time,
                "failure": any(isinstance(r, Failure) for r in case.result),
                "error": any(isinstance(r, Error) for r in case.result),
                "results": kinds,
            })
        suites.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures,
                       "errors": suite.errors, "time": suite.time, "cases": cases})
    print(json.dumps(suites, sort_keys=True))


if __name__ == "__main__":
    main()
