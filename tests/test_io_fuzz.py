"""Malformed files for the readers (issue 14): seeded mutations of valid files of every format. ``io.read`` must
either read a file or raise InputError with one line naming it; anything else (another exception, a traceback, a
message over several lines) is a failure.

The test runs a CI-sized slice (a few hundred cases) in a subprocess whose address space is capped, so that a
mutation that makes a reader allocate wildly fails the test instead of the machine. The same module is the fuzz
run: ``python tests/test_io_fuzz.py FOLDER N [SEED]`` prints a JSON summary (docs/io.md has the figures of a
10,000-case run).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import warnings
from pathlib import Path

ADDRESS_SPACE = 6 * 2**30  # bytes: a reader that tries to allocate more gets MemoryError, a failure here
BAD_VALUES = ["0", "-1", "-0.5", "nan", "inf", "1e12", "4294967297", "abc", "", "1.5", "3", "999999",
              "uint64", "float128", "bit", "XYZCT", "TCZYX", "YX", "µm", "parsec", "null"]
OME_ATTRIBUTES = ["SizeX", "SizeY", "SizeZ", "SizeC", "SizeT", "Type", "DimensionOrder", "PhysicalSizeX",
                  "PhysicalSizeY", "PhysicalSizeZ", "PhysicalSizeXUnit", "PhysicalSizeZUnit", "SamplesPerPixel",
                  "BigEndian", "IFD", "PlaneCount", "Namespace"]
JSON_VALUES = [None, 0, -1, 1, 3, 2**40, 1.5, float("nan"), "", "x", "float128", [], [0], [1, 2], [2**31] * 3,
               [-1, 4, 4], {"name": "q"}, {}, True, ["z", "y"], [{"name": "t", "type": "time"}] * 3]


def _base_files(folder: Path) -> dict[str, Path]:
    import numpy as np

    from widefield3d import io

    rng = np.random.default_rng(0)
    stack = io.Image((rng.random((3, 8, 10)) * 1000).astype(np.uint16), "ZYX", (0.5, 0.2, 0.2))
    rgb = io.Image((rng.random((3, 8, 10)) * 255).astype(np.uint8), "CYX", {"Y": 0.3, "X": 0.3})
    files = {}
    for name, image in (("stack.ome.tif", stack), ("stack.tif", stack), ("stack.ome.zarr", stack),
                        ("stack.npy", stack), ("rgb.png", rgb), ("rgb.jpg", rgb)):
        files[name] = io.write(folder / "base" / name, image)
    return files


def _mutate_bytes(data: bytes, rnd: random.Random) -> bytes:
    data = bytearray(data)
    kind = rnd.choice(["flip", "flip", "header", "truncate", "insert", "zero"])
    if kind == "truncate":
        return bytes(data[: rnd.randrange(len(data))])
    if kind == "insert":
        at = rnd.randrange(len(data))
        return bytes(data[:at] + bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16))) + data[at:])
    if kind == "zero":
        at = rnd.randrange(len(data))
        data[at : at + rnd.randint(1, 64)] = bytes(min(64, len(data) - at))
        return bytes(data)
    span = min(len(data), 600) if kind == "header" else len(data)
    for _ in range(rnd.randint(1, 8)):
        data[rnd.randrange(span)] = rnd.randrange(256)
    return bytes(data)


def _mutate_ome_xml(path: Path, rnd: random.Random) -> None:
    import re

    import tifffile

    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    for _ in range(rnd.randint(1, 3)):
        attribute = rnd.choice(OME_ATTRIBUTES)
        xml = re.sub(rf'{attribute}="[^"]*"', f'{attribute}="{rnd.choice(BAD_VALUES)}"', xml, count=1)
    if rnd.random() < 0.1:
        xml = xml[: rnd.randrange(len(xml))]  # broken XML
    tifffile.tiffcomment(path, xml.encode("utf-8"))


def _mutate_zarr_json(path: Path, rnd: random.Random) -> None:
    meta_path = rnd.choice([path / "zarr.json", path / "s0" / "zarr.json"])
    meta = json.loads(meta_path.read_text())
    for _ in range(rnd.randint(1, 3)):
        node, keys = meta, []
        while isinstance(node, (dict, list)) and node and rnd.random() < 0.8:
            key = rnd.choice(list(node)) if isinstance(node, dict) else rnd.randrange(len(node))
            keys.append(key)
            parent, node = node, node[key]
        if keys:
            parent[keys[-1]] = rnd.choice(JSON_VALUES)
    meta_path.write_text(json.dumps(meta))


def fuzz(folder: Path, n: int, seed: int = 0) -> dict:
    """Run ``n`` mutated reads; return counts and up to 20 failures (file, kind, message)."""
    import shutil

    from widefield3d import io
    from widefield3d.errors import InputError

    folder = Path(folder)
    base = _base_files(folder)
    rnd = random.Random(seed)
    counts = {"read": 0, "refused": 0, "failed": 0}
    failures = []
    work = folder / "case"
    for case in range(n):
        name = rnd.choice(sorted(base))
        source = base[name]
        path = work / f"{case}-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if source.is_dir():
                shutil.copytree(source, path)
                if rnd.random() < 0.7:
                    _mutate_zarr_json(path, rnd)
                else:
                    chunk = rnd.choice(sorted(p for p in (path / "s0").rglob("*") if p.name != "zarr.json"
                                              and p.is_file()))
                    chunk.write_bytes(_mutate_bytes(chunk.read_bytes(), rnd))
            else:
                shutil.copy(source, path)
                if name.endswith(".npy"):
                    shutil.copy(source.with_name(source.name + ".json"), path.with_name(path.name + ".json"))
                if name.endswith(".ome.tif") and rnd.random() < 0.5:
                    _mutate_ome_xml(path, rnd)
                else:
                    path.write_bytes(_mutate_bytes(path.read_bytes(), rnd))
        except Exception:  # a mutation the helpers cannot make (e.g. XML tifffile will not store): skip
            counts.setdefault("not made", 0)
            counts["not made"] += 1
            _discard(path)
            continue
        lazy = rnd.random() < 0.3
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                io.read(path, lazy=lazy)
            counts["read"] += 1
        except InputError as err:
            text = str(err)
            if "\n" in text or path.name not in text:
                counts["failed"] += 1
                failures.append([path.name, "InputError not one line naming the file", text[:300]])
            else:
                counts["refused"] += 1
        except BaseException as err:  # noqa: BLE001 (the point: anything else is a finding)
            if isinstance(err, KeyboardInterrupt):
                raise
            counts["failed"] += 1
            failures.append([path.name, type(err).__name__, str(err).splitlines()[0][:300] if str(err) else ""])
        _discard(path)
    return {"cases": n, "seed": seed, **counts, "failures": failures[:20]}


def _discard(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".json").unlink(missing_ok=True)


def run_capped(folder: Path, n: int, seed: int = 0, timeout: float = 600) -> dict:
    """:func:`fuzz` in a subprocess with its address space capped at :data:`ADDRESS_SPACE`."""
    done = subprocess.run([sys.executable, __file__, str(folder), str(n), str(seed)], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"the fuzz run ended with status {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_malformed_files_are_read_or_refused_in_one_line(tmp_path):
    summary = run_capped(tmp_path, 300, seed=14)
    assert summary["failed"] == 0, summary["failures"]
    assert summary["refused"] > 50 and summary["read"] + summary["refused"] + summary.get("not made", 0) == 300


if __name__ == "__main__":
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    print(json.dumps(fuzz(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)))
