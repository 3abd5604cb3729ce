"""Where the bench scripts write their JSON records: ``--out``, else $OUT, else bench/out."""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
import sys


def out_dir(out: Path | None) -> Path:
    """Return the folder records go to (made if missing)."""
    folder = out or Path(os.environ.get('OUT') or Path(__file__).resolve().parent / 'out')
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_header(benchmark: str, **fields) -> dict:
    """Return the start of ``bench/<benchmark>.py``'s record: name, ``fields``, date, command."""
    return {'benchmark': benchmark, **fields, 'date': datetime.date.today().isoformat(),
            'command': f'python3 bench/{benchmark}.py ' + ' '.join(sys.argv[1:])}


def write_record(report: dict, name: str, out: Path | None) -> Path:
    """Write ``report`` as JSON to ``out_dir(out) / name``, say where, and return the path."""
    path = out_dir(out) / name
    path.write_text(json.dumps(report, indent=1))
    print(f'wrote {path}')
    return path
