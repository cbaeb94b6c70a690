#!/usr/bin/env python3
"""Prints the swiftc arguments that link Fuzz/Harnesses.swift against the instrumented library modules SwiftPM
built into BUILD_DIR (scripts/fuzz): the object files of every target the harness imports, transitively (from
`swift package describe`, also for dependency packages such as Yams), and the module maps of their C targets.

Usage: link_inputs.py BUILD_DIR (e.g. .build-fuzz/release); reads the imports from Fuzz/Harnesses.swift.
One argument per line, so the shell can read them with mapfile.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def describe(path):
    out = subprocess.run(["swift", "package", "--package-path", path, "describe", "--type", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def main():
    build = os.path.abspath(sys.argv[1])
    scratch = os.path.dirname(build)  # .build-fuzz: its checkouts/ hold the dependency packages
    harness = open(os.path.join(ROOT, "Fuzz", "Harnesses.swift")).read()
    wanted = re.findall(r"^import (\w+)", harness, re.M)

    packages = [(ROOT, describe(ROOT))]
    checkouts = os.path.join(scratch, "checkouts")
    for name in sorted(os.listdir(checkouts)) if os.path.isdir(checkouts) else []:
        packages.append((os.path.join(checkouts, name), describe(os.path.join(checkouts, name))))
    targets, products = {}, {}
    for path, d in packages:
        for t in d["targets"]:
            targets.setdefault(t["name"], (path, t))
        for p in d.get("products", []):
            products.setdefault(p["name"], p["targets"])

    closure, stack = [], [w for w in wanted if w in targets]
    while stack:
        name = stack.pop()
        if name in closure:
            continue
        closure.append(name)
        _, t = targets[name]
        stack += t.get("target_dependencies") or []
        for p in t.get("product_dependencies") or []:
            stack += products.get(p, [])

    args = []
    for name in sorted(closure):
        path, t = targets[name]
        folder = os.path.join(path, t["path"])
        if t["type"] == "system-target":
            args += ["-Xcc", "-fmodule-map-file=" + os.path.join(folder, "module.modulemap")]
            continue
        objdir = os.path.join(build, name + ".build")
        if t["module_type"] == "ClangTarget":
            include = os.path.join(folder, "include")
            own = os.path.join(include, "module.modulemap")  # a package's own map, else the one SwiftPM generated
            args += ["-Xcc", "-fmodule-map-file=" + (own if os.path.exists(own) else os.path.join(objdir, "module.modulemap"))]
            if os.path.isdir(include):
                args += ["-Xcc", "-I" + include]
        if t["module_type"] == "SwiftTarget":
            # The objects SwiftPM compiled for this target's current sources (one per file, named by basename).
            mapping = os.path.join(objdir, "output-file-map.json")
            if not os.path.exists(mapping):
                sys.exit(f"link_inputs.py: {mapping} is missing: build the target {name} first")
            objects = [v["object"] for k, v in json.load(open(mapping)).items() if k and "object" in v]
        else:
            objects = [os.path.join(objdir, source + ".o") for source in t.get("sources", [])]
        for obj in objects:
            if not os.path.exists(obj):
                sys.exit(f"link_inputs.py: {obj} is missing: build the target {name} first")
        args += objects
    print("\n".join(args))


if __name__ == "__main__":
    main()
