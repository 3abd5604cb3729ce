"""
Run one command on two versions of the code, alternated: a before/after measurement in one command.

    python3 bench/alternate.py --before REV [--after REV] [--rounds 2] [--out DIR] -- COMMAND...
    python3 bench/alternate.py --export REV FOLDER

``before`` (and ``after`` when given; else this working tree as it is) are exported with ``git
archive`` into DIR/trees/<name>: the package, the kernels and bench/ (not its results). On a
machine that has the checkout's files but not its history (the lent GPU hosts), export the version
beforehand with ``--export REV FOLDER`` and name FOLDER instead of REV. Each round runs COMMAND in
``before``'s tree, then in ``after``'s, with that tree first on PYTHONPATH; ``{out}`` in COMMAND
becomes DIR/<name>-<round>, and the output goes to DIR/<name>-<round>.txt. So that each tree's code
runs, name programs as modules or scripts (``python3 -m s3dnn_ros.tools.bench``, ``python3
bench/worker_profile.py``), not as installed console scripts; a program given by a relative path
(``.venv/bin/python``) is the one of the folder this is started from. DIR/alternate.json lists
the runs (exit status, seconds). DIR: --out, else $OUT, else bench/out.

Running the two versions in turn on one machine is what makes their difference readable: the same
command differs by tens of percent between lent machines, and drifts on one.
"""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
import subprocess
import sys
import time

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import out_dir  # noqa: E402
from s3dnn_ros.tools.cli import Parser, positive_int  # noqa: E402

#: what a tree holds: everything the package, its kernels and the bench scripts read
TREE_PATHS = ['s3dnn_ros', 'kernels', 'bench', 'setup.py', 'setup.cfg', 'package.xml', 'resource',
              ':(exclude)bench/results']
OUT_TOKEN = '{out}'
#: the file of an exported tree that names its commit
COMMIT_FILE = 'COMMIT'


def export(rev: str, folder: Path) -> str:
    """
    Write ``rev``'s TREE_PATHS into ``folder`` and return its full commit id.

    Raises ValueError naming the revision when git does not know it.
    """
    found = subprocess.run(['git', 'rev-parse', '--verify', '--quiet', f'{rev}^{{commit}}'],
                           cwd=REPO, capture_output=True, text=True)
    if found.returncode:
        raise ValueError(f'{rev!r} is not a commit of this repository')
    commit = found.stdout.strip()
    folder.mkdir(parents=True)
    archive = subprocess.run(['git', 'archive', commit, *TREE_PATHS], cwd=REPO,
                             capture_output=True, check=True)
    subprocess.run(['tar', '-x', '-C', str(folder)], input=archive.stdout, check=True)
    (folder / COMMIT_FILE).write_text(commit + '\n')
    return commit


def version(spec: str, folder: Path) -> tuple[Path, str]:
    """
    Return (tree, commit) of ``spec``: a folder ``--export`` wrote, used where it is, or a commit.

    A commit is exported into ``folder``; ValueError when ``spec`` is neither.
    """
    given = Path(spec)
    if (given / COMMIT_FILE).is_file():
        return given.resolve(), (given / COMMIT_FILE).read_text().strip()
    return folder, export(spec, folder)


def run_once(tree: Path, command: list[str], out: Path) -> dict:
    """Run ``command`` in ``tree`` with ``{out}`` made ``out``; return its exit status and time."""
    argv = [part.replace(OUT_TOKEN, str(out)) for part in command]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(tree), os.environ.get('PYTHONPATH')])))
    start = time.monotonic()
    with open(f'{out}.txt', 'w') as log:
        code = subprocess.run(argv, cwd=tree, env=env, stdout=log,
                              stderr=subprocess.STDOUT).returncode
    return {'name': out.name, 'returncode': code, 'seconds': round(time.monotonic() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = Parser(prog='alternate.py', description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--before', help='the version measured first (a commit, or a folder '
                                         '--export wrote)')
    parser.add_argument('--after', help='the version measured second (as --before; default: '
                                        'this working tree as it is)')
    parser.add_argument('--export', nargs=2, metavar=('REV', 'FOLDER'),
                        help='only write the tree of commit REV into the new folder FOLDER')
    parser.add_argument('--rounds', type=positive_int, default=2,
                        help='times each version runs (default 2)')
    parser.add_argument('--out', type=Path)
    split = argv.index('--') if '--' in argv else len(argv)
    args = parser.parse_args(argv[:split])
    if args.export:
        rev, folder = args.export[0], Path(args.export[1])
        if folder.exists():
            parser.error(f'argument --export: {folder} exists; allowed: a new folder')
        try:
            print(f'{folder}: {export(rev, folder)}')
        except ValueError as error:
            parser.error(f'argument --export: {error}')
        return 0
    if args.before is None:
        parser.error('argument --before is required (or --export REV FOLDER)')
    if split == len(argv):
        parser.error('missing -- before the command to run')
    command = argv[split + 1:]
    if not command:
        parser.error('no command after --')
    if os.sep in command[0]:  # a program given by path: the one here, not a tree's
        # (absolute, not resolved: a virtual environment's python is a link to the base
        # interpreter, which would run without the environment's packages)
        command[0] = os.path.abspath(command[0])
    folder = out_dir(args.out).resolve()
    trees = folder / 'trees'
    if trees.exists():
        parser.error(f'argument --out: {folder} already holds trees; allowed: a new folder')
    versions = {}
    try:
        versions['before'] = version(args.before, trees / 'before')
        if args.after:
            versions['after'] = version(args.after, trees / 'after')
    except ValueError as error:
        parser.error(f'argument --before/--after: {error}')
    if not args.after:
        git = ['git', '-C', str(REPO)]
        head = subprocess.run([*git, 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run([*git, 'status', '--porcelain', '--untracked-files=no'],
                               capture_output=True, text=True, check=True).stdout.strip()
        versions['after'] = (REPO, f'working tree at {head}'
                             + (' with uncommitted changes' if dirty else ''))
    runs = []
    for round_ in range(1, args.rounds + 1):
        for name, (tree, _) in versions.items():
            runs.append(run_once(tree, command, folder / f'{name}-{round_}'))
            print(f'{runs[-1]["name"]}: exit {runs[-1]["returncode"]}, {runs[-1]["seconds"]} s',
                  flush=True)
    record = {'benchmark': 'alternate', 'date': datetime.date.today().isoformat(),
              'command': 'python3 bench/alternate.py ' + ' '.join(argv),
              'versions': {name: version for name, (_, version) in versions.items()},
              'runs': runs}
    (folder / 'alternate.json').write_text(json.dumps(record, indent=1))
    print(f'wrote {folder / "alternate.json"}')
    return 0 if all(run['returncode'] == 0 for run in runs) else 1


if __name__ == '__main__':
    sys.exit(main())
