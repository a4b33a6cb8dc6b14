"""Loading reach on a real repository (#9): `shapelens check --format json` over every file of the repository
that defines a model, run from the repository's root as a user would, and a table per file: the statements
with shapes, and the findings by code (SL004s are what our loading may cause).

    .venv/bin/python bench/examples_loading.py /work/real/examples [out.json]
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time


def model_files(root: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
                if "nn.Module" in text or "nn.Sequential" in text:
                    found.append(os.path.relpath(path, root))
    return found


def main() -> None:
    root = sys.argv[1]
    files = model_files(root)
    shapelens = os.path.join(os.path.dirname(sys.executable), "shapelens")  # PYTHONPATH may pick the code
    started = time.monotonic()
    done = subprocess.run(
        [shapelens, "check", "--format", "json", "--exit-zero", *files], cwd=root, capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    document = json.loads(done.stdout)
    by_path = {f["path"]: f for f in document["files"]}
    rows = []
    for path in files:
        report = by_path.get(path, {"hints": [], "diagnostics": []})
        codes = collections.Counter(f["code"] for f in report["diagnostics"])
        sl004 = [f["message"] for f in report["diagnostics"] if f["code"] == "SL004"]
        rows.append({"path": path, "hints": len(report["hints"]), "codes": dict(codes), "sl004": sl004})
    with_shapes = sum(1 for r in rows if r["hints"])
    total_sl004 = sum(r["codes"].get("SL004", 0) for r in rows)
    for r in rows:
        codes = " ".join(f"{c}x{n}" for c, n in sorted(r["codes"].items()))
        print(f"{r['path']:70} {r['hints']:5}  {codes}")
        for message in r["sl004"]:
            print(f"{'':72}SL004: {message[:150]}")
    print(f"\n{with_shapes}/{len(rows)} files with shapes, {total_sl004} SL004, {elapsed:.0f} s")
    if "Failed to initialize NumPy" in done.stderr:
        print("stderr: Failed to initialize NumPy")
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as handle:
            json.dump({"rows": rows, "document": document, "stderr": done.stderr[-5000:]}, handle, indent=1)


if __name__ == "__main__":
    main()
