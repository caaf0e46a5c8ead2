"""Regenerate generated/ from protos/ with grpcio-tools.

    python scripts/gen_protos.py           # rewrite generated/
    python scripts/gen_protos.py --check   # exit 1 when generated/ is out of sync
"""
from __future__ import annotations

import argparse
import filecmp
import pathlib
import shutil
import sys
import tempfile

import google.api
import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED = ROOT / "generated"


def generate(out: pathlib.Path) -> None:
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    googleapis = pathlib.Path(google.api.__path__[0]).parent.parent  # holds google/api/*.proto
    well_known = pathlib.Path(grpc_tools.__path__[0]) / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # protoc writes modules, not packages.
    for folder in {p.parent for p in out.rglob("*_pb2.py")}:
        while folder != out:
            (folder / "__init__.py").touch()
            folder = folder.parent


def differences(a: pathlib.Path, b: pathlib.Path) -> list[str]:
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    changed = [str(p) for p in files_a & files_b if not filecmp.cmp(a / p, b / p, shallow=False)]
    return sorted(changed + [f"only in generated/: {p}" for p in files_a - files_b]
                  + [f"missing from generated/: {p}" for p in files_b - files_a])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        fresh = pathlib.Path(tmp)
        generate(fresh)
        if check:
            diff = differences(GENERATED, fresh)
            for line in diff:
                print(f"out of sync: {line}", file=sys.stderr)
            if diff:
                print("run: python scripts/gen_protos.py", file=sys.stderr)
                return 1
            print("generated/ is in sync with protos/")
            return 0
        shutil.rmtree(GENERATED, ignore_errors=True)
        shutil.copytree(fresh, GENERATED)
    print(f"wrote {GENERATED.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
