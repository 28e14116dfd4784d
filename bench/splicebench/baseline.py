"""The build the "no worse than before" goals of issue 12 compare with: main before issue 12
(its NIO data plane; the 1.05 ms splice p99 and 38 ms listing in the issue were measured on
it). A figure from an earlier run compares two moments of the machine as much as two builds,
so bench/run measures this build beside the current one, in the same rounds."""
import subprocess

from .env import ROOT, WORK, log

COMMIT = "1217d3a1271d447e0cc786c20d599bdeeb8793e0"
SOURCE = WORK / f"baseline-{COMMIT[:7]}"
BINARY = SOURCE / ".build" / "release" / "splicegate"


def baseline_binary():
    """The baseline's release binary, built from the commit's tree into bench/work once (a few
    minutes the first time)."""
    if BINARY.exists():
        return BINARY
    log(f"building the baseline (main before issue 12, {COMMIT[:7]}) into {SOURCE}")
    SOURCE.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", COMMIT], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(SOURCE)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {COMMIT} failed: is this a clone with main's history?")
    with open(WORK / "build-baseline.log", "w") as out:
        subprocess.run(["swift", "build", "-c", "release", "--product", "splicegate"], cwd=SOURCE,
                       stdout=out, stderr=subprocess.STDOUT, check=True)
    return BINARY
